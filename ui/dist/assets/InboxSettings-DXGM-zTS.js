import{j as r,v as a}from"./index-DePY-KpI.js";import"./legacy-BDHmBYBK.js";var n=a("<h1>Inbox settings</h1>");function i(t){var o=n();r(t,o)}export{i as default};
