// Package sparkplug holds the building blocks of fieldgate's Sparkplug B
// 3.0 edge node (SPEC §5): topic names, the mapping of point types onto
// Sparkplug datatypes, the payloads of births, deaths and data, the seq and
// bdSeq counters, the alias catalog, command decoding and the primary
// host's STATE. It does no I/O but for the bdSeq file: the bridge owns the
// MQTT connection and decides when each message goes out, by the rules
// below. Payloads are the protobuf messages of Eclipse Tahu's
// sparkplug_b.proto, generated into sparkplugpb.
//
// # Who is who
//
// The gateway is the edge node spBv1.0/<group_id>/…/<edge_node_id>; each
// adapter is a device; each point is a metric named after the point, with
// the datatype of its type (PointDataType) and its unit as the metric
// property "engUnit". Besides bdSeq and Node Control/Rebirth, the node
// declares metrics of its own: its version, the buffer backlog and each
// adapter's state (GatewayMetrics).
//
// # A session
//
// A session is one MQTT connection. It is clean (clean session true, or
// clean start with a session expiry of 0 on MQTT 5): a host application
// cannot use anything a broker kept from an earlier session, since seq and
// aliases start again with each birth. Before each CONNECT the node takes
// the next bdSeq (BdSeq.Next, 0–255, persisted, one more on every connect
// attempt) and registers NDeath(bdSeq) as its will: topic NDEATH, QoS 1,
// not retained. Once connected it subscribes, at QoS 1, to its commands
// (Node.CommandFilters) and, with a primary host configured, to that
// host's STATE topic; it then publishes the birth sequence: the NBIRTH
// (seq 0, the same bdSeq, Node Control/Rebirth = false, every node metric
// with its current value), then a DBIRTH for each device, each with every
// metric, its current value (null if none yet), datatype, alias and unit,
// then a DDEATH for each device in error: every device's first DBIRTH
// belongs to the birth sequence, before any data. Births and DDEATH go at QoS 0, not retained,
// as the specification requires; nothing is ever retained. The
// specification asks for QoS 0 for data too; fieldgate publishes NDATA and
// DDATA at the upstream's qos, since only an acknowledgement lets the
// buffer's cursor move with the guarantees of SPEC §4 (qos = 0 gives the
// specification's behaviour, with the cursor moving once a message is
// written to the socket).
//
// After the births, NDATA carries changed node metrics and DDATA new
// readings, each metric by alias only, with the time it was read, in the
// order read. An adapter that goes to error gets a DDEATH; when it
// recovers, a new DBIRTH with its current values. Every message but the
// NDEATH carries seq, one more than the message before it in the session,
// 255 followed by 0 (Seq); the NBIRTH starts at 0 again.
//
// A session ends with the will when the link is lost: the broker publishes
// the NDEATH, and its bdSeq tells the host which NBIRTH it ends. On a
// deliberate stop the node publishes the NDEATH itself (QoS 1, so the
// broker has it) and only then sends DISCONNECT, which discards the will.
//
// # Rebirth
//
// An NCMD setting Node Control/Rebirth to true (Command.IsRebirth) asks for
// the birth sequence again: the node sends no more data from that moment,
// publishes NBIRTH with the same bdSeq (the session and its will are
// unchanged) and every DBIRTH, and only then carries on. Hosts ask for it when they see a seq gap or a
// metric they do not know. Other NCMD metrics are ignored.
//
// # Commands
//
// A DCMD names metrics by alias or by name; DecodeCommand resolves each
// against the catalog and reads its value as the declared datatype, so a
// Boolean metric takes a boolean_value, an Int16 an int_value, and so on.
// The bridge then writes each value through the command path of SPEC §3
// (adapters.Writer), with its validation, refusals and read-back; the
// point's actual value goes out in DDATA, so a host sees a refused write
// revert.
//
// # Primary host
//
// With a primary host configured, the node publishes no birth until that
// host's STATE (spBv1.0/STATE/<host id>, retained, JSON
// {"online":true,"timestamp":…}) says online, and a STATE only counts if its
// timestamp is not older than the last one that counted (PrimaryHost). When
// the host goes offline the node publishes NDEATH, disconnects and moves to
// the next server of its list, where it waits again. Readings keep being
// buffered all the while.
//
// # Store and forward
//
// Readings taken while no session could publish them (broker unreachable,
// primary host offline) wait in the disk buffer. After the births of the
// next session they are published, in buffer order, as DDATA metrics with
// is_historical = true and the time they were read, so hosts store them
// in history without taking them for current values; live readings follow
// with is_historical unset. The DBIRTH carries each point's latest value,
// which is the current value a host shows. The upstream's cursor moves as
// for the other formats (SPEC §4): only what the broker acknowledged is
// delivered.
package sparkplug
