import{b3 as p,b4 as t,b5 as b}from"./index-DILJDaZj.js";function i(s,a,...e){var r=new b(s);p(()=>{const n=a()??null;r.ensure(n,n&&(o=>n(o,...e)))},t)}export{i as s};
