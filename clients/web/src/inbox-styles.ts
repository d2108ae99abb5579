// The look of <herald-inbox>, all of it inside its shadow root. Pages theme it with the public custom properties
// (`--herald-*`, inherited into the shadow tree); each is read once into a private `--_*` property, whose
// fallback is the light or the dark palette. Dark applies with `theme="dark"`, or when the system prefers dark
// and the element does not say `theme="light"`.

const dark = `--_accent:var(--herald-accent,#8b93ff);--_bg:var(--herald-bg,#1c1f26);--_fg:var(--herald-fg,#e6edf3);--_muted:var(--herald-muted,#9ba3ad);
--_border:var(--herald-border,#373e47);--_unread:var(--herald-unread-bg,#262c46);
--_hover:var(--herald-hover-bg,#2a3039);--_badge:var(--herald-badge-bg,#f85149);--_error:var(--herald-error,#ff7b72);
color-scheme:dark;`;

export const inboxStyles = `
:host{--_accent:var(--herald-accent,#4f46e5);--_bg:var(--herald-bg,#fff);--_fg:var(--herald-fg,#1f2328);
--_muted:var(--herald-muted,#59636e);--_border:var(--herald-border,#d1d9e0);--_unread:var(--herald-unread-bg,#eef0ff);
--_hover:var(--herald-hover-bg,#f3f4f6);--_badge:var(--herald-badge-bg,#cf222e);--_error:var(--herald-error,#cf222e);
--_radius:var(--herald-radius,10px);display:inline-block;position:relative;color-scheme:light;
font:var(--herald-font-size,14px)/1.4 var(--herald-font-family,system-ui,sans-serif)}
:host([theme=dark]){${dark}}
@media (prefers-color-scheme:dark){:host(:not([theme=light])){${dark}}}
:host([hidden]),[hidden]{display:none!important}
*{box-sizing:border-box}
button{font:inherit;color:inherit;background:none;border:0;margin:0;padding:0;cursor:pointer}
:focus-visible{outline:2px solid var(--herald-focus-ring,var(--_accent));outline-offset:2px}
svg{width:1.3em;height:1.3em;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
.bell,.icon{display:grid;place-items:center;flex:none;width:2.5em;height:2.5em;border-radius:50%}
.bell{position:relative}
button:hover:enabled{background:var(--_hover)}
.badge{position:absolute;top:0;right:0;min-width:1.5em;padding:0 .4em;border-radius:.75em;background:var(--_badge);
color:#fff;font-size:.72em;font-weight:700;line-height:1.5em;text-align:center}
.panel{position:absolute;z-index:var(--herald-z-index,1000);top:calc(100% + 6px);right:0;display:flex;
flex-direction:column;width:var(--herald-panel-width,min(24rem,calc(100vw - 1rem)));
max-height:var(--herald-panel-max-height,70vh);background:var(--_bg);color:var(--_fg);
border:1px solid var(--_border);border-radius:var(--_radius);box-shadow:var(--herald-shadow,0 8px 28px #0003);
overflow:hidden;text-align:start}
:host([align=start]) .panel{right:auto;left:0}
.panel:focus{outline:0}
header{display:flex;align-items:center;padding:.4em .4em .4em .9em;border-bottom:1px solid var(--_border)}
h2{flex:1;margin:0;font-size:1.05em}
.text,.more{padding:.4em .6em;border-radius:calc(var(--_radius) / 2);color:var(--_accent);font-weight:600}
.text:disabled{color:var(--_muted);cursor:default}
.icon{width:2.1em;height:2.1em;color:var(--_muted)}
.icon[aria-pressed=true]{color:var(--_accent)}
.scroll{flex:1;overflow-y:auto}
ul{list-style:none;margin:0;padding:0}
li{display:flex;align-items:flex-start;border-bottom:1px solid var(--_border)}
.unread{background:var(--_unread)}
.open{flex:1;min-width:0;display:grid;gap:.15em;padding:.65em .5em .65em .9em;text-align:start;border-radius:0}
.title{font-weight:500;overflow-wrap:anywhere}
.unread .title{font-weight:700}
.unread .title:before{content:"";display:inline-block;width:.5em;height:.5em;margin-inline-end:.45em;
border-radius:50%;background:var(--_accent)}
li:not(.unread) .state{display:none}
.body{color:var(--_muted);overflow-wrap:anywhere;display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;
overflow:hidden}
time,.note{color:var(--_muted);font-size:.85em}
li .icon{margin:.4em .3em 0 0}
.note{margin:0;padding:1.5em 1em;text-align:center}
.more{display:block;width:100%}
.error{margin:0;padding:.4em .9em;color:var(--_error)}
.prefs{padding:.75em .9em}
fieldset{margin:0 0 .75em;padding:0;border:0}
legend{margin-bottom:.3em;padding:0;font-weight:700}
label{display:flex;align-items:center;gap:.6em;padding:.3em 0}
input{width:1.1em;height:1.1em;margin:0;accent-color:var(--_accent)}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
`;
