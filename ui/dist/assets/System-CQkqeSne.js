import{j as r,v as a}from"./index-Bq5Lt9Al.js";import"./legacy-BUcVB6YD.js";var m=a("<h1>System</h1>");function s(t){var o=m();r(t,o)}export{s as default};
