import{a,f as r}from"./index-CVqsAdT2.js";import"./legacy-Dwe1_pVH.js";var n=r("<h1>Inbox settings</h1>");function f(t){var o=n();a(t,o)}export{f as default};
