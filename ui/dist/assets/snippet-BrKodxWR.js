import{b1 as p,b2 as t,b3 as b}from"./index-CLeiozUg.js";function i(s,a,...e){var r=new b(s);p(()=>{const n=a()??null;r.ensure(n,n&&(o=>n(o,...e)))},t)}export{i as s};
