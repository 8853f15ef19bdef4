// A stand-in for dnscontrol's JavaScript front end (pkg/js/helpers.js of
// dnscontrol v4), used where no dnscontrol release can be installed: it
// defines the functions a dnsconfig.js calls (NewRegistrar, NewDnsProvider,
// DnsProvider, D, D_EXTEND, TXT, CNAME, MX, TTL), applies the checks
// `dnscontrol check` makes on these records, runs the given dnsconfig.js with
// Node, and prints the resulting records as JSON:
//   node dnscontrol_stub.js dnsconfig.js
// Checks (each fails with a message and exit 1, as `dnscontrol check` does):
// D_EXTEND needs an earlier D() of that domain; labels are relative ("@" for
// the apex, no trailing dot); CNAME and MX targets are absolute (trailing
// dot) or "."; TTLs are integers; TXT values are strings (or arrays of
// strings, joined); no duplicate record; a CNAME shares its label with
// nothing else.
"use strict";
const path = require("path");
const domains = new Map();
const fail = (msg) => { throw new Error(msg); };

function modifiers(args, rec) {
  for (const m of args) {
    if (m && m.__ttl !== undefined) rec.ttl = m.__ttl;
    else fail(`${rec.type} ${rec.name}: unknown modifier ${JSON.stringify(m)}`);
  }
  return rec;
}
function label(name, type) {
  if (typeof name !== "string" || name === "") fail(`${type}: label must be a non-empty string`);
  if (name.endsWith(".")) fail(`${type} ${name}: label must be relative to the domain (no trailing dot)`);
  return name;
}
function target(t, type, name) {
  if (typeof t !== "string" || !(t === "." || t.endsWith("."))) {
    fail(`${type} ${name}: target ${JSON.stringify(t)} must be absolute (end with a dot)`);
  }
  return t;
}
global.TTL = (v) => {
  if (!Number.isInteger(v) || v < 0) fail(`TTL(${v}): not an integer`);
  return { __ttl: v };
};
global.TXT = (name, value, ...mods) => {
  if (Array.isArray(value)) value = value.join("");
  if (typeof value !== "string") fail(`TXT ${name}: value must be a string`);
  return modifiers(mods, { type: "TXT", name: label(name, "TXT"), value, ttl: 300 });
};
global.CNAME = (name, t, ...mods) =>
  modifiers(mods, { type: "CNAME", name: label(name, "CNAME"), value: target(t, "CNAME", name), ttl: 300 });
global.MX = (name, pref, t, ...mods) => {
  if (!Number.isInteger(pref) || pref < 0 || pref > 65535) fail(`MX ${name}: bad preference ${pref}`);
  return modifiers(mods, { type: "MX", name: label(name, "MX"), value: `${pref} ${target(t, "MX", name)}`, ttl: 300 });
};
global.NewRegistrar = (n) => ({ registrar: n });
global.NewDnsProvider = (n) => ({ provider: n });
global.DnsProvider = (p) => ({ __provider: p });
function add(domain, items) {
  const recs = domains.get(domain);
  for (const r of items) {
    if (r && r.__provider) continue;
    if (!r || !r.type) fail(`${domain}: not a record: ${JSON.stringify(r)}`);
    const same = recs.filter((x) => x.name === r.name);
    if (same.some((x) => x.type === r.type && x.value === r.value)) fail(`${domain}: duplicate ${r.type} ${r.name}`);
    if (same.some((x) => (x.type === "CNAME") !== (r.type === "CNAME"))) fail(`${domain}: CNAME ${r.name} shares its label`);
    recs.push(r);
  }
}
global.D = (domain, registrar, ...items) => {
  if (domains.has(domain)) fail(`D("${domain}") declared twice`);
  domains.set(domain, []);
  add(domain, items);
};
global.D_EXTEND = (domain, ...items) => {
  if (!domains.has(domain)) fail(`D_EXTEND("${domain}"): no D() of that domain before it`);
  add(domain, items);
};
try {
  require(path.resolve(process.argv[2]));
} catch (e) {
  console.error(`dnsconfig.js: ${e.message}`);
  process.exit(1);
}
console.log(JSON.stringify(Object.fromEntries(domains), null, 1));
