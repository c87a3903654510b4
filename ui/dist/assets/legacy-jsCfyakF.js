import{aY as a}from"./index-BfuJlbIb.js";a();
