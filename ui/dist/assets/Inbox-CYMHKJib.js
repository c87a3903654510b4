import{p,a as t,f}from"./index-DqoITXpV.js";var n=f("<h1>Inbox</h1>");function m(o,a){p(a,"id",3,"");var r=n();t(o,r)}export{m as default};
