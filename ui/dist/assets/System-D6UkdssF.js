import{j as r,v as a}from"./index-BfuJlbIb.js";import"./legacy-jsCfyakF.js";var m=a("<h1>System</h1>");function s(t){var o=m();r(t,o)}export{s as default};
