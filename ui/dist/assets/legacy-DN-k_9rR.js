import{aM as a}from"./index-BJ-_lzSO.js";a();
