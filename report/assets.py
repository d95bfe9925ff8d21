"""The report's stylesheet and script, inlined into every page, and their CSP hashes.

Kept as constants (not files) so the package needs no data files and the hashes in the
Content-Security-Policy are computed from exactly the bytes that are inlined.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root{--bg:#f6f7f9;--card:#fff;--ink:#1c2430;--muted:#5b6777;--line:#e3e7ee;--accent:#2457c5;
--critical:#7a1020;--high:#d6362f;--medium:#e8930c;--low:#3b7ddd;--info:#8a94a6;
--good:#1f9d61;--fair:#e8a10c;--poor:#d6362f;--track:#eef1f5}
@media (prefers-color-scheme:dark){:root{--bg:#12161d;--card:#1a2029;--ink:#e6eaf0;--muted:#9aa6b6;
--line:#2a3340;--accent:#7aa7ff;--track:#252d39;--info:#6f7a8c}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header.top{background:linear-gradient(120deg,#1d3f8f,#2457c5);color:#fff;padding:22px 32px}
header.top h1{margin:0 0 4px;font-size:22px;font-weight:650;letter-spacing:.2px}
header.top p{margin:0;opacity:.88}
nav.toc{position:sticky;top:0;z-index:2;background:var(--card);border-bottom:1px solid var(--line);padding:8px 32px;display:flex;gap:18px;flex-wrap:wrap}
nav.toc a{color:var(--muted);text-decoration:none;font-size:13px}
nav.toc a:hover{color:var(--accent)}
main{max-width:1240px;margin:0 auto;padding:20px 24px 48px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:18px 0}
section h2{margin:0 0 12px;font-size:17px;font-weight:650}
section h3{margin:14px 0 8px;font-size:14px;color:var(--muted);font-weight:600}
p.note{color:var(--muted);margin:6px 0 10px;font-size:13px}
.warn{background:#fff6e0;color:#6b4a00;border:1px solid #f0d48a;border-radius:8px;padding:8px 12px;margin:12px 0}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:14px;margin-top:4px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px}
.kpi .n{font-size:28px;font-weight:700}
.kpi .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.6px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px}
svg.chart{width:100%;height:auto;max-width:680px;display:block}
svg.columns{max-width:400px}
svg.chart text{font-size:11px;fill:var(--muted)}
svg.chart text.value{fill:var(--ink);font-weight:600}
svg.chart .grid{stroke:var(--line);stroke-width:1}
svg.chart .track{fill:var(--track)}
.sev-critical{fill:var(--critical)}.sev-high{fill:var(--high)}.sev-medium{fill:var(--medium)}
.sev-low{fill:var(--low)}.sev-info{fill:var(--info)}
.rate-good{fill:var(--good)}.rate-fair{fill:var(--fair)}.rate-poor{fill:var(--poor)}
.exp-now{fill:var(--high)}.exp-pess{fill:var(--medium)}.exp-after{fill:var(--good)}
.legend span{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 12px;vertical-align:-1px}
.legend .exp-now{background:var(--high)}.legend .exp-pess{background:var(--medium)}.legend .exp-after{background:var(--good)}
polyline.line-open{stroke:var(--high);stroke-width:2.5}circle.line-open{fill:var(--high)}
polyline.line-rate{stroke:var(--good);stroke-width:2.5}circle.line-rate{fill:var(--good)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:hover{background:var(--track)}
th button{all:unset;cursor:pointer}
th button::after{content:" \\2195";opacity:.35}
th[aria-sort=ascending] button::after{content:" \\2191";opacity:1}
th[aria-sort=descending] button::after{content:" \\2193";opacity:1}
.pill{display:inline-block;border-radius:999px;padding:1px 9px;font-size:11px;font-weight:650;color:#fff;text-transform:uppercase;letter-spacing:.4px}
.pill.critical{background:var(--critical)}.pill.high{background:var(--high)}.pill.medium{background:var(--medium)}
.pill.low{background:var(--low)}.pill.info{background:var(--info)}
.cov{display:inline-block;border-radius:6px;padding:1px 8px;font-size:12px;font-weight:600}
.cov.automated{background:#dff5e9;color:#13633d}.cov.partly{background:#fff1d6;color:#7a5200}.cov.manual{background:#eceff4;color:#4a5566}
.exp-soon{color:var(--medium);font-weight:600}.exp-past{color:var(--poor);font-weight:600}
.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:center;margin:0 0 10px}
.filters input,.filters select{font:inherit;padding:6px 9px;border:1px solid var(--line);border-radius:7px;background:var(--card);color:var(--ink)}
.filters input{min-width:260px}
.filters output{color:var(--muted);font-size:12px}
a{color:var(--accent)}
.scroll{overflow-x:auto}
footer{color:var(--muted);font-size:12px;text-align:center;padding:24px}
@media print{nav.toc,.filters{display:none}body{background:#fff}section{break-inside:avoid;border:none;padding:8px 0}
header.top{background:none;color:#000;padding:0 0 8px}}
"""

JS = """
(function(){
'use strict';
function key(cell,type){var v=cell.getAttribute('data-v');if(v===null){v=cell.textContent.trim();}
return type==='num'?parseFloat(v)||0:v.toLowerCase();}
document.querySelectorAll('table.sortable').forEach(function(table){
var heads=table.querySelectorAll('thead th');
heads.forEach(function(th,col){var btn=th.querySelector('button');if(!btn){return;}
btn.addEventListener('click',function(){
var asc=th.getAttribute('aria-sort')!=='ascending';
heads.forEach(function(h){h.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',asc?'ascending':'descending');
var type=th.getAttribute('data-type')||'text';var body=table.tBodies[0];
var rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){var x=key(a.cells[col],type),y=key(b.cells[col],type);
return (x<y?-1:x>y?1:0)*(asc?1:-1);});
rows.forEach(function(r){body.appendChild(r);});});});});
var table=document.getElementById('open-table');if(!table){return;}
var q=document.getElementById('f-text'),sel=document.querySelectorAll('.filters select');
var out=document.getElementById('f-count');
function apply(){var needle=q.value.trim().toLowerCase(),shown=0,rows=table.tBodies[0].rows;
for(var i=0;i<rows.length;i++){var r=rows[i],ok=!needle||r.textContent.toLowerCase().indexOf(needle)>=0;
sel.forEach(function(s){if(s.value&&r.getAttribute('data-'+s.name)!==s.value){ok=false;}});
r.hidden=!ok;if(ok){shown++;}}
out.value=shown+' of '+rows.length+' shown';}
q.addEventListener('input',apply);sel.forEach(function(s){s.addEventListener('change',apply);});
apply();
})();
"""


def csp_hash(text: str) -> str:
    """The ``'sha256-...'`` source expression of an inline block's exact text."""
    return (
        "'sha256-"
        + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
        + "'"
    )


def content_security_policy(*, script: bool = True) -> str:
    """Nothing may load; only our own inline style (and script) run, pinned by hash."""
    parts = [
        "default-src 'none'",
        f"style-src {csp_hash(CSS)}",
        "img-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
    parts.insert(2, f"script-src {csp_hash(JS)}" if script else "script-src 'none'")
    return "; ".join(parts)
