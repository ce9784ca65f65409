{#- Logs in with the credentials in the URL's fragment: the form `login`, through the page's doLogin()
    (CHAP or PAP). Shared by the generated login.html and the sandbox hotspot page, which plays it. -#}
/* Kiosque sends the buyer here with #username=…&password=… (a fragment never leaves the phone). */
(function(){var h=location.hash.replace(/^#/,''),q={},f=document.login;if(!h)return;
h.split('&').forEach(function(p){var i=p.indexOf('=');if(i>0)try{q[decodeURIComponent(p.slice(0,i))]=decodeURIComponent(p.slice(i+1).replace(/\+/g,' '))}catch(e){}});
if(!q.username)return;
if(history.replaceState)history.replaceState(null,'',location.pathname+location.search);else location.hash='';
f.username.value=q.username;f.password.value=q.password||'';
if(doLogin())f.submit()})();
