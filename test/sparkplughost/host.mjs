// A Sparkplug B 3.0 host application for fieldgate's tests. It decodes what
// an edge node publishes with Eclipse Tahu's sparkplug-payload (and the
// protobufjs code it ships), independently of fieldgate's own Go decoder,
// checks it against the specification and reports every message, and
// every problem it finds, as one JSON line on stdout. It sends commands
// (NCMD, DCMD) and its STATE on request, one JSON line on stdin each.
//
//   node host.mjs --url mqtt://127.0.0.1:1883 --group G --node N [--host-id H]
//
// Lines out ("event" tells them apart):
//   {"event":"ready"}                                once subscribed (and, as a
//                                                    primary host, online)
//   {"event":"connected"}, {"event":"subscribed"}    at each (re)connect
//   {"event":"message","topic","type","device","qos","retain","seq",
//    "timestamp","bdSeq","metrics":[…],"problems":[…]}
//        metrics: {"name","alias","resolved","datatype","field","value",
//                  "isNull","isHistorical","timestamp","properties"}
//        NBIRTH adds "rebirth" (same bdSeq as the session before it);
//        NDEATH adds "bdSeqMatchesBirth"; NDATA and DDATA between a
//        rebirth request and its NBIRTH add "afterRebirthRequest"
//   {"event":"state","topic","online","timestamp","retain"}
//   {"event":"sent","id","topic"}                    a command went out
//   {"event":"error","id","message"}                 a command was not sent
//
// Lines in:
//   {"id":1,"cmd":"rebirth"}
//   {"id":2,"cmd":"dcmd","device":"d","metrics":[{"name":"p","value":1},
//                                                {"alias":7,"value":true}]}
//   {"id":3,"cmd":"ncmd","metrics":[…]}
//   {"id":4,"cmd":"state","online":false[,"timestamp":…]}
// A command metric's datatype is the one its birth declared, unless it
// gives "type"; 64-bit integer values may be given as strings.

import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import mqtt from "mqtt";

const require = createRequire(import.meta.url);
const sparkplug = require("sparkplug-payload").get("spBv1.0");
const Long = require("long");
const RawPayload = require("sparkplug-payload/lib/sparkplugPayloadProto").org.eclipse.tahu.protobuf.Payload;

const NS = "spBv1.0";
const args = parseArgs(process.argv.slice(2));
const group = args.group, node = args.node, hostID = args["host-id"];
if (!args.url || !group || !node) {
  console.error("usage: host.mjs --url URL --group G --node N [--host-id H]");
  process.exit(2);
}

// The value field the Sparkplug 3.0 datatype table assigns to each datatype.
const FIELD = {
  Int8: "intValue", Int16: "intValue", Int32: "intValue",
  UInt8: "intValue", UInt16: "intValue", UInt32: "intValue",
  Int64: "longValue", UInt64: "longValue", DateTime: "longValue",
  Float: "floatValue", Double: "doubleValue", Boolean: "booleanValue",
  String: "stringValue", Text: "stringValue", UUID: "stringValue",
};
const EDGE_TYPES = new Set(["NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDEATH", "DDATA"]);
const DEVICE_TYPES = new Set(["DBIRTH", "DDEATH", "DDATA", "DCMD"]);

// session is the edge node's current session, from its NBIRTH to the
// NDEATH that carries the same bdSeq; null before the first and after it.
let session = null;
let rebirthRequested = false; // an NCMD rebirth went out, no NBIRTH since
const stateTimestamp = Date.now(); // this host's STATE timestamp, one per run

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function parseArgs(argv) {
  const a = {};
  for (let i = 0; i + 1 < argv.length; i += 2) a[argv[i].replace(/^--/, "")] = argv[i + 1];
  return a;
}

function num(v) {
  return Long.isLong(v) ? v.toNumber() : v;
}

// jsonValue keeps 64-bit integers exact: as decimal strings.
function jsonValue(v) {
  if (Long.isLong(v)) return v.toString();
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  return v;
}

function stateOnline(online, timestamp) {
  return JSON.stringify({ online, timestamp });
}

const options = { clean: true, reconnectPeriod: 100, connectTimeout: 5000, protocolVersion: 4 };
if (hostID) {
  options.clientId = "sparkplughost-" + hostID + "-" + process.pid;
  options.will = { topic: `${NS}/STATE/${hostID}`, payload: stateOnline(false, stateTimestamp), qos: 1, retain: true };
}
const client = mqtt.connect(args.url, options);
let ready = false;

client.on("connect", async () => {
  out({ event: "connected" });
  const filters = { [`${NS}/${group}/+/${node}`]: { qos: 1 }, [`${NS}/${group}/+/${node}/+`]: { qos: 1 } };
  if (hostID) filters[`${NS}/STATE/${hostID}`] = { qos: 1 };
  try {
    await client.subscribeAsync(filters);
    if (hostID) {
      await client.publishAsync(`${NS}/STATE/${hostID}`, stateOnline(true, stateTimestamp), { qos: 1, retain: true });
    }
  } catch (err) {
    console.error("host: subscribe:", err.message);
    return;
  }
  out({ event: "subscribed" });
  if (!ready) {
    ready = true;
    out({ event: "ready" });
  }
});
client.on("error", (err) => console.error("host: mqtt:", err.message));

client.on("message", (topic, payload, packet) => {
  try {
    onMessage(topic, payload, packet);
  } catch (err) {
    out({ event: "message", topic, problems: [`cannot handle: ${err.message}`] });
  }
});

function onMessage(topic, payload, packet) {
  const parts = topic.split("/");
  if (parts[1] === "STATE") {
    let s = {};
    try {
      s = JSON.parse(payload.toString());
    } catch {
      s = { raw: payload.toString() };
    }
    out({ event: "state", topic, online: s.online, timestamp: s.timestamp, retain: packet.retain });
    return;
  }
  const type = parts[2];
  const msg = { event: "message", topic, type, device: parts[4], qos: packet.qos, retain: packet.retain, problems: [] };
  const problem = (p) => msg.problems.push(p);
  if (DEVICE_TYPES.has(type) !== (parts.length === 5) || parts.length < 4) problem("topic has the wrong number of elements");
  let decoded, raw;
  try {
    decoded = sparkplug.decodePayload(payload);
    raw = RawPayload.decode(payload);
  } catch (err) {
    problem(`not a Sparkplug B payload: ${err.message}`);
    out(msg);
    return;
  }
  msg.timestamp = decoded.timestamp === undefined ? undefined : num(decoded.timestamp);
  msg.seq = decoded.seq === undefined ? undefined : num(decoded.seq);
  msg.metrics = (decoded.metrics || []).map((m, i) => metricOut(m, raw.metrics[i]));
  if (EDGE_TYPES.has(type)) check(type, msg, problem);
  out(msg);
}

function metricOut(m, raw) {
  const o = {
    name: m.name,
    alias: m.alias === undefined ? undefined : num(m.alias),
    datatype: raw.hasOwnProperty("datatype") ? m.type : undefined,
    field: raw.value, // protobufjs names the oneof member that is set
    isNull: raw.isNull === true,
    isHistorical: m.isHistorical === true,
    timestamp: m.timestamp === undefined ? undefined : num(m.timestamp),
  };
  if (m.properties) {
    o.properties = {};
    for (const [k, p] of Object.entries(m.properties)) o.properties[k] = { type: p.type, value: jsonValue(p.value) };
  }
  Object.defineProperty(o, "raw", { value: raw }); // kept out of the JSON
  setValue(o, o.datatype);
  return o;
}

// setValue reads a metric's value as datatype: its own in births and
// commands, the one its birth declared in DATA messages, which carry none.
// Tahu's decodePayload cannot do the latter (it picks the field by the
// metric's own datatype) and reads UInt32 from long_value only, where the
// specification puts it in int_value; so values are read here, from the
// protobuf fields Tahu's generated code decoded.
function setValue(o, datatype) {
  const raw = o.raw;
  if (o.isNull || o.field === undefined) {
    o.value = null;
    return;
  }
  const v = raw[o.field];
  switch (FIELD[datatype] === o.field ? datatype : undefined) {
    case "Int8": case "Int16": case "Int32":
      o.value = v | 0;
      break;
    case "UInt8": case "UInt16": case "UInt32":
      o.value = v >>> 0;
      break;
    case "Int64":
      o.value = Long.fromValue(v).toSigned().toString();
      break;
    case "UInt64": case "DateTime":
      o.value = Long.fromValue(v).toUnsigned().toString();
      break;
    default:
      o.value = jsonValue(v);
  }
}

// check applies the edge node rules of Sparkplug 3.0 to one message and
// keeps the session state they need.
function check(type, msg, problem) {
  if (msg.retain) problem(`${type} is retained`);
  if (type === "NDEATH") return checkNDeath(msg, problem);
  if (msg.timestamp === undefined) problem("no payload timestamp");
  else if (Math.abs(Date.now() - msg.timestamp) > 5 * 60 * 1000) problem(`payload timestamp ${msg.timestamp} is not the time it was sent`);
  if (msg.seq === undefined) {
    problem("no seq");
  } else if (msg.seq < 0 || msg.seq > 255) {
    problem(`seq ${msg.seq} out of 0..255`);
  }
  if (type === "NBIRTH") return checkNBirth(msg, problem);
  if (!session) {
    problem(`${type} before any NBIRTH of this session`);
    return;
  }
  // The TCK fails a node that sends data between a rebirth request and the
  // NBIRTH answering it; a message already on its way when the request
  // arrived is marked too, so a test decides.
  if (rebirthRequested && (type === "NDATA" || type === "DDATA")) msg.afterRebirthRequest = true;
  const want = (session.lastSeq + 1) % 256;
  if (msg.seq !== want) problem(`seq ${msg.seq} after ${session.lastSeq}, want ${want}`);
  session.lastSeq = msg.seq;
  const dev = msg.device;
  switch (type) {
    case "DBIRTH":
      // A device may be born again after its DDEATH, but every device's
      // first DBIRTH belongs to the birth sequence, before any data.
      if (!session.devices.has(dev) && session.data) problem(`first DBIRTH of ${dev} after data: DBIRTHs must follow the NBIRTH`);
      checkBirthMetrics(msg, dev, problem);
      session.devices.set(dev, true);
      break;
    case "DDEATH":
      if (session.devices.get(dev) !== true) problem(`DDEATH of ${dev}, which is not born`);
      session.devices.set(dev, false);
      break;
    case "NDATA":
      session.data = true;
      checkDataMetrics(msg, "", problem);
      break;
    case "DDATA":
      session.data = true;
      if (session.devices.get(dev) !== true) problem(`DDATA of ${dev} without a DBIRTH since its NBIRTH or DDEATH`);
      checkDataMetrics(msg, dev, problem);
      break;
  }
}

function checkNBirth(msg, problem) {
  rebirthRequested = false;
  if (msg.seq !== 0) problem(`NBIRTH seq ${msg.seq}, want 0`);
  const bd = msg.metrics.find((m) => m.name === "bdSeq");
  if (!bd) {
    problem("NBIRTH without bdSeq");
  } else if (bd.datatype !== "Int64" || bd.field !== "longValue") {
    problem(`bdSeq is ${bd.datatype} in ${bd.field}, want Int64 in longValue`);
  }
  const rb = msg.metrics.find((m) => m.name === "Node Control/Rebirth");
  if (!rb) problem("NBIRTH without Node Control/Rebirth");
  else if (rb.datatype !== "Boolean" || rb.value !== false || rb.alias !== undefined) {
    problem(`Node Control/Rebirth is ${rb.datatype} ${rb.value} alias ${rb.alias}, want Boolean false without alias`);
  }
  const bdSeq = bd ? Number(bd.value) : undefined;
  msg.bdSeq = bdSeq;
  msg.rebirth = session !== null && session.bdSeq === bdSeq;
  session = { bdSeq, lastSeq: msg.seq, aliases: new Map(), names: new Map(), devices: new Map() };
  checkBirthMetrics(msg, "", problem);
}

function checkNDeath(msg, problem) {
  if (msg.seq !== undefined) problem("NDEATH carries a seq");
  if (msg.metrics.length !== 1 || msg.metrics[0].name !== "bdSeq") {
    problem("NDEATH must carry the bdSeq metric alone");
  }
  const bd = msg.metrics.find((m) => m.name === "bdSeq");
  if (bd && (bd.datatype !== "Int64" || bd.field !== "longValue")) problem(`NDEATH bdSeq is ${bd.datatype} in ${bd.field}`);
  msg.bdSeq = bd ? Number(bd.value) : undefined;
  msg.bdSeqMatchesBirth = session !== null && session.bdSeq === msg.bdSeq;
  // A host ignores an NDEATH whose bdSeq is not its session's: a stale will.
  if (msg.bdSeqMatchesBirth) session = null;
}

function checkBirthMetrics(msg, device, problem) {
  const seen = new Set();
  for (const m of msg.metrics) {
    const what = `${msg.type} metric ${m.name}`;
    if (m.name === undefined) {
      problem(`${msg.type} metric without a name`);
      continue;
    }
    if (seen.has(m.name.toLowerCase())) problem(`${what} twice (names must differ in more than case)`);
    seen.add(m.name.toLowerCase());
    if (m.datatype === undefined) problem(`${what} without a datatype`);
    if (m.timestamp === undefined) problem(`${what} without a timestamp`);
    checkField(m, m.datatype, what, problem);
    const props = m.raw.properties;
    if (props) {
      if (props.keys.length !== props.values.length) problem(`${what} has ${props.keys.length} property keys and ${props.values.length} values`);
      props.values.forEach((v, i) => {
        if (!v.hasOwnProperty("type")) problem(`${what} property ${props.keys[i]} without a type`);
      });
    }
    const key = device + "/" + m.name;
    if (m.alias !== undefined) {
      const owner = session.aliases.get(m.alias);
      if (owner !== undefined && owner !== key) problem(`${what} alias ${m.alias} is already ${owner}`);
      session.aliases.set(m.alias, key);
    } else if (!(device === "" && (m.name === "bdSeq" || m.name === "Node Control/Rebirth"))) {
      problem(`${what} without an alias`);
    }
    session.names.set(key, { alias: m.alias, datatype: m.datatype });
    m.resolved = m.name;
  }
}

function checkDataMetrics(msg, device, problem) {
  const last = new Map(); // metric -> timestamp of its previous live value in this payload
  for (const m of msg.metrics) {
    let key;
    if (m.alias !== undefined) {
      key = session.aliases.get(m.alias);
      if (m.name !== undefined) problem(`${msg.type} metric alias ${m.alias} also has a name`);
    } else {
      key = device + "/" + m.name;
    }
    const decl = key === undefined ? undefined : session.names.get(key);
    if (decl === undefined || !key.startsWith(device + "/")) {
      problem(`${msg.type} metric ${m.alias !== undefined ? "alias " + m.alias : m.name} is not declared by the births of ${device || "the node"}`);
      continue;
    }
    m.resolved = key.slice(device.length + 1);
    const what = `${msg.type} metric ${m.resolved}`;
    if (m.datatype !== undefined) problem(`${what} repeats its datatype`);
    if (m.timestamp === undefined) problem(`${what} without a timestamp`);
    checkField(m, decl.datatype, what, problem);
    setValue(m, decl.datatype);
    if (!m.isHistorical) {
      if (last.has(key) && m.timestamp < last.get(key)) problem(`${what} values out of chronological order`);
      last.set(key, m.timestamp);
    }
  }
}

function checkField(m, datatype, what, problem) {
  if (m.isNull) {
    if (m.field !== undefined) problem(`${what} is null but has a ${m.field}`);
    return;
  }
  const want = FIELD[datatype];
  if (want === undefined) problem(`${what} has datatype ${datatype}, which these checks do not know`);
  else if (m.field !== want) problem(`${what} is ${datatype} in ${m.field}, want ${want}`);
}

// Commands from the test, one JSON object a line.
createInterface({ input: process.stdin }).on("line", async (line) => {
  let c;
  try {
    c = JSON.parse(line);
  } catch {
    out({ event: "error", message: `not JSON: ${line}` });
    return;
  }
  try {
    const topic = await send(c);
    out({ event: "sent", id: c.id, topic });
  } catch (err) {
    out({ event: "error", id: c.id, message: err.message });
  }
}).on("close", () => shutdown());

async function send(c) {
  const now = Date.now();
  switch (c.cmd) {
    case "rebirth":
      rebirthRequested = true;
      return command(`${NS}/${group}/NCMD/${node}`, now, [{ name: "Node Control/Rebirth", type: "Boolean", value: true }]);
    case "ncmd":
      return command(`${NS}/${group}/NCMD/${node}`, now, c.metrics.map((m) => commandMetric("", m)));
    case "dcmd":
      return command(`${NS}/${group}/DCMD/${node}/${c.device}`, now, c.metrics.map((m) => commandMetric(c.device, m)));
    case "state": {
      if (!hostID) throw new Error("not a primary host: start with --host-id");
      const topic = `${NS}/STATE/${hostID}`;
      await client.publishAsync(topic, stateOnline(c.online, c.timestamp ?? stateTimestamp), { qos: 1, retain: true });
      return topic;
    }
  }
  throw new Error(`unknown command ${c.cmd}`);
}

// commandMetric fills in the datatype the births declared for a metric
// named by name or alias.
function commandMetric(device, m) {
  let type = m.type;
  if (type === undefined && session) {
    const key = m.alias !== undefined ? session.aliases.get(m.alias) : device + "/" + m.name;
    type = session.names.get(key)?.datatype;
  }
  if (type === undefined) throw new Error(`no datatype known for ${m.alias ?? m.name} of ${device || "the node"}`);
  let value = m.value;
  if ((type === "Int64" || type === "UInt64") && typeof value === "string") value = Long.fromString(value, type === "UInt64");
  const out = { type, value };
  if (m.alias !== undefined) out.alias = m.alias;
  else out.name = m.name;
  return out;
}

async function command(topic, now, metrics) {
  const payload = sparkplug.encodePayload({ timestamp: now, metrics });
  await client.publishAsync(topic, Buffer.from(payload), { qos: 0, retain: false });
  return topic;
}

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  // A host that stops on purpose publishes its death before disconnecting.
  if (hostID && client.connected) {
    await client.publishAsync(`${NS}/STATE/${hostID}`, stateOnline(false, stateTimestamp), { qos: 1, retain: true }).catch(() => {});
  }
  await client.endAsync().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
