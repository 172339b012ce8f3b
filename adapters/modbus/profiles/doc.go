// Package profiles is fieldgate's library of built-in Modbus device register
// maps: one TOML file per device, embedded in the binary. A [[modbus]]
// adapter with profile = "NAME" takes its points from the file NAME.toml;
// the modbus package decodes the points itself, so this package imports
// nothing of fieldgate's.
//
// # File format
//
// Metadata first, then one [[point]] table per point with the keys of a
// [[modbus.point]] and no others (name, table, address, type, byte_order,
// scale, offset, unit, writable, length, bit):
//
//	name = "eastron-sdm630"    # [a-z0-9-]+, the file name without .toml
//	maker = "Eastron"
//	model = "SDM630-Modbus V2"
//	kind = "meter"             # meter | inverter | battery | drive | charger | other
//	source = "Eastron SDM630Modbus Smart Meter Modbus Protocol Implementation V1.8"
//	notes = "RTU 9600 8N1 by default, unit id 1."
//
//	[[point]]
//	name = "voltage_l1"
//	table = "input_register"
//	address = 0                # 0-based protocol address: register 30001 is 0
//	type = "float32"
//	unit = "V"
//
// The source names the maker's register map document and its version; the
// notes say when a map could only be cross-checked against other public
// implementations rather than read in the maker's document.
//
// # Point names
//
// One vocabulary across all profiles, so that dashboards and rules written
// for one device carry over to the next:
//
//   - Phases are suffixed _l1, _l2, _l3; line-to-line voltages _l1_l2,
//     _l2_l3, _l3_l1; the neutral _n. A name without a phase is the device
//     total (or the only phase of a single-phase device).
//   - voltage, current, power (active, W), reactive_power (var),
//     apparent_power (VA), power_factor, phase_angle (°), frequency (Hz);
//     _avg is an average over phases, _sum a sum, _max a maximum.
//   - energy_import and energy_export (kWh, active), reactive_energy_import
//     and reactive_energy_export (kvarh), energy_total (import + export);
//     per phase energy_import_l1 …; per tariff _t1, _t2.
//   - power_demand, current_demand (the meter's demand averages) and
//     _demand_max.
//   - thd_voltage_l1, thd_current_l1 … (%).
//   - Inverters and hybrids: the names above for the AC side; pv_power and
//     pv1_voltage, pv1_current, pv1_power … per MPP tracker; energy_yield
//     (lifetime, kWh) and energy_yield_today; grid_power, grid_energy_import,
//     grid_energy_export for the inverter's grid meter; load_power;
//     power_limit (writable where the device takes it).
//   - Batteries: battery_power, or battery_charge_power and
//     battery_discharge_power where the device reports them apart;
//     battery_soc, battery_soh (%), battery_voltage, battery_current,
//     battery_temperature (°C), battery_energy_charge,
//     battery_energy_discharge.
//   - Drives: control_word, status_word, speed_reference, speed (rpm),
//     frequency (output, Hz), motor_current, motor_voltage.
//   - Chargers: charging_state, current_limit.
//   - temperature is the device's own (heat sink, internal); state and
//     error_code are the device's raw codes (never "status", which names
//     the adapter's status topic); serial_number, model and
//     firmware_version are strings or raw numbers as the device gives them.
//
// Signs are the device's: a profile does not negate a value. Its notes say
// which way powers count (e.g. battery power positive while charging) where
// the maker's document or the cross-checked sources state it.
//
// Units are those Home Assistant knows: V, A, W, kW, kWh, Wh, Hz, VA, var,
// kvarh, kVAh, %, °C, °, rpm, Nm, s, ms, h. Only points meant to be written are
// writable (a drive's speed reference, an inverter's power limit, a
// charger's current limit), never a meter's.
//
// # Adding a profile
//
// Add one file NAME.toml to this folder. The package test checks every file:
// no unknown keys, metadata complete, name equal to the file name, point
// names unique, tables, types and byte orders valid, registers not
// overlapping, addresses in range, writable only where Modbus can write.
package profiles
