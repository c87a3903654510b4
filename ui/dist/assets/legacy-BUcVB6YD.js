import{aY as a}from"./index-Bq5Lt9Al.js";a();
