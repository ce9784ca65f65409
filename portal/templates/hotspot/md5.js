/* Standard MD5 over the low byte of each character, for the CHAP login (hexMD5, as RouterOS's own md5.js). */
function hexMD5(s){var K=[],S=[7,12,17,22,5,9,14,20,4,11,16,23,6,10,15,21],i,j,n=s.length,
len=(((n+8)>>6)+1)*16,w=[],h=[1732584193,-271733879,-1732584194,271733878],hex='';
for(i=0;i<64;i++)K[i]=Math.floor(Math.abs(Math.sin(i+1))*4294967296)|0;
for(i=0;i<len;i++)w[i]=0;
for(i=0;i<n;i++)w[i>>2]|=(s.charCodeAt(i)&255)<<((i%4)*8);
w[n>>2]|=128<<((n%4)*8);w[len-2]=n*8;
for(i=0;i<len;i+=16){var a=h[0],b=h[1],c=h[2],d=h[3];
for(j=0;j<64;j++){var r=j>>4,f,g;
if(r==0){f=(b&c)|(~b&d);g=j}else if(r==1){f=(d&b)|(~d&c);g=(5*j+1)%16}
else if(r==2){f=b^c^d;g=(3*j+5)%16}else{f=c^(b|~d);g=(7*j)%16}
var t=d,x=(a+f+K[j]+w[i+g])|0,k=S[r*4+j%4];d=c;c=b;b=(b+((x<<k)|(x>>>(32-k))))|0;a=t}
h[0]=(h[0]+a)|0;h[1]=(h[1]+b)|0;h[2]=(h[2]+c)|0;h[3]=(h[3]+d)|0}
for(i=0;i<16;i++)hex+=('0'+((h[i>>2]>>>((i%4)*8))&255).toString(16)).slice(-2);
return hex}
