import{b2 as a}from"./index-CKezkCFW.js";a();
