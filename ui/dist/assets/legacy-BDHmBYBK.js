import{aM as a}from"./index-DePY-KpI.js";a();
