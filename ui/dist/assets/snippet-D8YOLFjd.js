import{a_ as p,a$ as t,b0 as c}from"./index-CI9okXNq.js";function b(n,s,...e){var r=new c(n);p(()=>{const a=s()??null;r.ensure(a,a&&(o=>a(o,...e)))},t)}export{b as s};
