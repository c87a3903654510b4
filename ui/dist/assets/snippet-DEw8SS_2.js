import{aZ as p,a_ as t,a$ as c}from"./index-CulUgBQP.js";function l(n,s,...e){var r=new c(n);p(()=>{const a=s()??null;r.ensure(a,a&&(o=>a(o,...e)))},t)}export{l as s};
