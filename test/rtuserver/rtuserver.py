"""A Modbus RTU server (slave) on a serial port, for fieldgate's tests.

It serves several unit ids on one port with Debian's python3-pymodbus
(3.0), so the adapter under test talks to a third-party implementation of
the protocol rather than to one written alongside it. Run it with
/usr/bin/python3: a pyenv or virtualenv Python on PATH lacks Debian's
dist-packages.

    rtuserver.py --port /dev/pts/N --units units.json [--baud 9600]
                 [--parity N] [--bytesize 8] [--stopbits 1]
                 [--identity identity.json]

units.json maps each served unit id to its registers, all 0-based:

    {"1": {"hr": {"0": [1, 2]}, "ir": {"5": [7]}, "co": {"3": [1]}, "di": {}}}

Unit ids not in the file get no answer, as a dead unit on a bus. The units
identity.json lists answer device identification requests (FC 43/14) with
its objects, the same for all (pymodbus keeps one identity per process):

    {"units": [1], "objects": {"0": "vendor", "1": "product code", "2": "1.0"}}

The other units refuse them with exception 1, illegal function, as most
meters do. Once the
port is open it prints "ready" on stdout; it reopens the port when it
vanishes and comes back (a replugged cable) and exits on SIGTERM or when
stdin closes. Commands on stdin, one a line, each answered on stdout:

    get UNIT TABLE ADDR COUNT   -> "values V..."
    set UNIT TABLE ADDR V...    -> "ok"
    corrupt UNIT                -> "ok"; then "corrupted UNIT" once the next
                                   reply to UNIT went out with a wrong CRC
"""

import argparse
import asyncio
import json
import logging
import signal
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.device import ModbusDeviceIdentification
from pymodbus.mei_message import ReadDeviceInformationResponse
from pymodbus.pdu import ExceptionResponse, ModbusExceptions
from pymodbus.server.async_io import ModbusSerialServer
from pymodbus.transaction import ModbusRtuFramer

TABLES = {"co": 1, "di": 2, "hr": 3, "ir": 4}  # the function codes that read them

# Each table spans the whole 0-based address space the tests use.
SIZE = {"co": 2100, "di": 2100, "hr": 1000, "ir": 1000}


def unit_context(tables):
    blocks = {}
    for name, size in SIZE.items():
        values = [0] * size
        for addr, vals in tables.get(name, {}).items():
            for i, v in enumerate(vals):
                values[int(addr) + i] = int(v)
        blocks[name] = ModbusSequentialDataBlock(0, values)
    return ModbusSlaveContext(zero_mode=True, **blocks)


class Corrupter:
    """Sends the next reply to a unit with its CRC inverted, on request, and
    refuses device identification to the units without one."""

    def __init__(self, identified):
        self.pending = set()
        self.identified = identified
        self.framer = ModbusRtuFramer(None)

    def __call__(self, response):
        if isinstance(response, ReadDeviceInformationResponse) and response.unit_id not in self.identified:
            refusal = ExceptionResponse(response.function_code, ModbusExceptions.IllegalFunction)
            refusal.unit_id, refusal.transaction_id = response.unit_id, response.transaction_id
            response = refusal
        if response.unit_id not in self.pending:
            return response, False
        self.pending.discard(response.unit_id)
        frame = bytearray(self.framer.buildPacket(response))
        frame[-1] ^= 0xFF
        frame[-2] ^= 0xFF
        print(f"corrupted {response.unit_id}", flush=True)
        return bytes(frame), True


def command(line, units, corrupter):
    words = line.split()
    if not words:
        return None
    op, unit = words[0], int(words[1])
    if op == "corrupt":
        corrupter.pending.add(unit)
        return "ok"
    fc, addr = TABLES[words[2]], int(words[3])
    if op == "get":
        return "values " + " ".join(str(int(v)) for v in units[unit].getValues(fc, addr, int(words[4])))
    if op == "set":
        units[unit].setValues(fc, addr, [int(v) for v in words[4:]])
        return "ok"
    raise ValueError(f"unknown command {op!r}")


async def commands(units, corrupter):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            answer = command(line.decode(), units, corrupter)
        except (ValueError, IndexError, KeyError) as exc:
            answer = f"error {exc}"
        if answer:
            print(answer, flush=True)


async def serve(args):
    with open(args.units, encoding="utf-8") as f:
        tables = json.load(f)
    units = {int(u): unit_context(t) for u, t in tables.items()}
    identity, identified = None, set()
    if args.identity:
        with open(args.identity, encoding="utf-8") as f:
            spec = json.load(f)
        identity = ModbusDeviceIdentification(info={int(k): v for k, v in spec["objects"].items()})
        identified = set(spec["units"])
    corrupter = Corrupter(identified)
    server = ModbusSerialServer(
        ModbusServerContext(slaves=units, single=False),
        ModbusRtuFramer,
        identity=identity,
        port=args.port,
        baudrate=args.baud,
        bytesize=args.bytesize,
        parity=args.parity,
        stopbits=args.stopbits,
        ignore_missing_slaves=True,
        auto_reconnect=True,
        reconnect_delay=0.1,
        response_manipulator=corrupter,
    )
    await server.start()
    if server.transport is None:
        sys.exit(f"rtuserver: cannot open {args.port}")
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reading = asyncio.create_task(commands(units, corrupter))
    reading.add_done_callback(lambda _: stop.set())
    await stop.wait()
    reading.cancel()
    await server.shutdown()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--port", required=True)
    p.add_argument("--units", required=True)
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--bytesize", type=int, default=8)
    p.add_argument("--parity", default="N")
    p.add_argument("--stopbits", type=int, default=1)
    p.add_argument("--identity")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
