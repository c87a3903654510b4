import{b0 as a}from"./index-CulUgBQP.js";a();
