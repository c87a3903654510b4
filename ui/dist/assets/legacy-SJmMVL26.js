import{aX as a}from"./index-B2dN_58G.js";a();
