import{b1 as a}from"./index-CI9okXNq.js";a();
