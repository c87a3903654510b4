import{b2 as a}from"./index-DQxyrEgY.js";a();
