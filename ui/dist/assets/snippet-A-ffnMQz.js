import{ai as p,aj as t,ak as c}from"./index-B2dN_58G.js";function l(n,s,...e){var r=new c(n);p(()=>{const a=s()??null;r.ensure(a,a&&(o=>a(o,...e)))},t)}export{l as s};
