import{aM as a}from"./index-BwdFt_zc.js";a();
