import{b0 as p,b1 as t,b2 as b}from"./index-dR_qQDXO.js";function i(s,a,...e){var r=new b(s);p(()=>{const n=a()??null;r.ensure(n,n&&(o=>n(o,...e)))},t)}export{i as s};
