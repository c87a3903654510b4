import{j as r,v as a}from"./index-BwdFt_zc.js";import"./legacy-Bc1OxJtv.js";var n=a("<h1>Inbox settings</h1>");function i(t){var o=n();r(t,o)}export{i as default};
