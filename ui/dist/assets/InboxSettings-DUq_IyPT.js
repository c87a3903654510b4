import{j as r,v as a}from"./index-BJ-_lzSO.js";import"./legacy-DN-k_9rR.js";var n=a("<h1>Inbox settings</h1>");function i(t){var o=n();r(t,o)}export{i as default};
