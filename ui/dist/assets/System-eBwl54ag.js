import{j as r,v as a}from"./index-B2dN_58G.js";import"./legacy-SJmMVL26.js";var m=a("<h1>System</h1>");function s(t){var o=m();r(t,o)}export{s as default};
