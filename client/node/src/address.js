'use strict';
// Server addresses: one kanband, or several replicas of one kanban (kanband
// processes sharing a PostgreSQL database), and the grpc-js target and
// channel options that dial them. The forms are those of kanbanctl --server:
//
//   host:port, [v6]:port   one server, as given (grpc-js resolves a name).
//   a:1,b:2,c:3            replicas: round_robin over them. Spaces around
//                          commas are ignored; each element needs a port. IP
//                          literals make one ipv4: (or ipv6:) list; host
//                          names need resolveServerAddress() (async: Node has
//                          no synchronous resolver), which looks every name
//                          up once (every address of every name; IPv4 when
//                          each element has one, else IPv6). The first
//                          element is the authority (the name TLS checks).
//   ipv4:A:P,B:Q           grpc-js's own lists, as given; round_robin.
//   ipv6:[A]:P,[B]:Q
//   dns:///name:port       re-resolved by grpc-js; round_robin over its records.
//   unix:path, scheme:...  as given.
//
// A ServerTarget is { target, roundRobin, authority, replicas }: the grpc-js
// target, whether calls are spread over every address, the authority (null:
// grpc-js's default) and one dialable target per replica, in order.
//
// Round robin is asked for with a service config ('grpc.service_config'):
// grpc-js has no 'grpc.lb_policy_name' option.

const dns = require('node:dns');
const net = require('node:net');

// Schemes of gRPC's own resolvers that a bare "word:rest" means; anything
// else without "://" is host:port ('localhost:7300').
const KNOWN_SCHEMES = new Set(['dns', 'ipv4', 'ipv6', 'unix', 'unix-abstract', 'vsock']);
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):([\s\S]*)$/;

const ROUND_ROBIN_CONFIG = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

function schemeOf(address) {
  const match = SCHEME.exec(address);
  if (!match) return null;
  return KNOWN_SCHEMES.has(match[1]) || match[2].startsWith('//') ? match[1] : null;
}

// A TypeError naming the field, as kanbanctl names --server.
function bad(address, problem) {
  return new TypeError(`server: "${address}"${problem}`);
}

// { host, port, family } of one list element; family 4 or 6 for an IP
// literal, 0 for a name.
function splitHostPort(address, element) {
  const quoted = `: "${element}"`;
  if (schemeOf(element) || element.includes('/')) {
    throw bad(address, `${quoted} is not host:port; a scheme (dns:, ipv4:, ...) goes first, for the whole address`);
  }
  let host;
  let rest;
  let family = 0;
  if (element.startsWith('[')) {
    const close = element.indexOf(']');
    if (close < 0) throw bad(address, `${quoted} has no closing ]`);
    host = element.slice(1, close);
    rest = element.slice(close + 1);
    if (!net.isIPv6(host)) throw bad(address, `${quoted} has no IPv6 address in [...]`);
    family = 6;
  } else {
    const colon = element.lastIndexOf(':');
    if (colon < 0) throw bad(address, `${quoted} has no port (give host:port)`);
    host = element.slice(0, colon);
    rest = element.slice(colon);
    if (host.includes(':')) {
      throw bad(address, `${quoted} is ambiguous: write an IPv6 address in brackets, [::1]:7300`);
    }
    if (net.isIPv4(host)) family = 4;
  }
  if (host === '') throw bad(address, `${quoted} has no host`);
  const port = rest.slice(1);
  if (!rest.startsWith(':') || !/^[0-9]+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw bad(address, `${quoted} has no port from 1 to 65535 (give host:port)`);
  }
  return { host, port, family };
}

// The target of a list whose elements' addresses are known: `resolved[i]`
// is { v4: [...], v6: [...] } for elements[i].
function listTarget(address, elements, resolved) {
  const useV4 = resolved.every((r) => r.v4.length > 0);
  if (!useV4 && !resolved.every((r) => r.v6.length > 0)) {
    throw bad(address, ' mixes IPv4-only and IPv6-only servers; one list holds one family (or give one dns:///name:port)');
  }
  const replicas = [];
  elements.forEach(({ port }, i) => {
    for (const ip of useV4 ? resolved[i].v4 : resolved[i].v6) {
      replicas.push(useV4 ? `${ip}:${port}` : `[${ip}]:${port}`);
    }
  });
  const first = elements[0];
  return {
    target: `${useV4 ? 'ipv4' : 'ipv6'}:${replicas.join(',')}`,
    roundRobin: true,
    authority: first.family === 6 ? `[${first.host}]:${first.port}` : `${first.host}:${first.port}`,
    replicas,
  };
}

// The elements of a comma list, each checked, before any name is looked up.
function listElements(address) {
  return address.split(',').map((element) => {
    const trimmed = element.trim();
    if (trimmed === '') throw bad(address, ' has an empty address');
    return splitHostPort(address, trimmed);
  });
}

function literal({ host, family }) {
  return family === 4 ? { v4: [host], v6: [] } : { v4: [], v6: [host] };
}

// The ServerTarget of every form but a comma list, for which it returns
// { address, elements } (each element checked) for the caller to resolve.
function parse(address) {
  if (typeof address !== 'string') throw new TypeError('server: the address must be a string');
  const trimmed = address.trim();
  if (trimmed === '') throw new TypeError('server: the address is empty');
  const scheme = schemeOf(trimmed);
  if (scheme === 'ipv4' || scheme === 'ipv6') {
    const elements = trimmed.slice(scheme.length + 1).split(',');
    if (elements.some((e) => e.trim() === '')) throw bad(trimmed, ' has an empty address');
    return {
      target: trimmed,
      roundRobin: true,
      authority: elements[0],
      replicas: elements.map((e) => `${scheme}:${e}`),
    };
  }
  if (scheme) return { target: trimmed, roundRobin: scheme === 'dns', authority: null, replicas: [trimmed] };
  if (!trimmed.includes(',')) return { target: trimmed, roundRobin: false, authority: null, replicas: [trimmed] };
  return { address: trimmed, elements: listElements(trimmed) };
}

// The ServerTarget of `address`, synchronously: every form but a list that
// holds host names, which throws (resolve it with resolveServerAddress()).
// TypeError ('server: "a:1,,b:2" has an empty address', ...) for a bad one.
function serverTarget(address) {
  const parsed = parse(address);
  if (!parsed.elements) return parsed;
  const name = parsed.elements.find((e) => e.family === 0);
  if (name) {
    throw bad(parsed.address, `: "${name.host}" is a host name; resolve the list first with ` +
      'await resolveServerAddress(address), or give IP addresses or one dns:///name:port');
  }
  return listTarget(parsed.address, parsed.elements, parsed.elements.map(literal));
}

// Resolves to the ServerTarget of any form, looking the names of a list up
// (dns.lookup, as the system resolver sees them). Rejects with a TypeError
// for a bad address or a name that does not resolve.
async function resolveServerAddress(address) {
  const parsed = parse(address);
  if (!parsed.elements) return parsed;
  const resolved = await Promise.all(parsed.elements.map(async (element) => {
    if (element.family !== 0) return literal(element);
    let found;
    try {
      found = await dns.promises.lookup(element.host, { all: true, verbatim: true });
    } catch (err) {
      throw bad(parsed.address, `: cannot resolve "${element.host}": ${err.code || err.message}`);
    }
    const ips = { v4: [], v6: [] };
    for (const { address: ip, family } of found) {
      const into = family === 4 ? ips.v4 : ips.v6;
      if (!into.includes(ip)) into.push(ip);
    }
    return ips;
  }));
  return listTarget(parsed.address, parsed.elements, resolved);
}

// The grpc-js channel options a ServerTarget asks for.
function targetChannelOptions({ roundRobin, authority }) {
  const options = {};
  if (roundRobin) options['grpc.service_config'] = ROUND_ROBIN_CONFIG;
  if (authority) options['grpc.default_authority'] = authority;
  return options;
}

module.exports = { serverTarget, resolveServerAddress, targetChannelOptions };
