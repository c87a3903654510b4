import{aL as a}from"./index-CVqsAdT2.js";a();
