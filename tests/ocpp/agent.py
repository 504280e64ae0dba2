"""An OCPP charger for the tests: PyPI `ocpp`'s v16.ChargePoint, or v201.ChargePoint when the
subprotocol is ocpp2.0.1 (it checks every message both ways against the OCA JSON schemas),
driven line by line from the test.

    agent.py <ws url> <charger id> <password or "-" for none> [subprotocol] [CA file for wss]

With several subprotocols (comma-separated) it offers them all and speaks the one the server
picks.

Reads JSON lines on stdin:
    {"op": "call", "action": "Authorize", "payload": {...camelCase...}}
        -> {"op": "result", "payload": {...}} or {"op": "error", "code": ..., "description": ...}
    {"op": "raw", "id": "x1", "text": "<a frame as text>"}
        -> {"op": "raw_result", "text": "<the answer frame>"} (or {"op": "raw_timeout"})
    {"op": "respond", "action": "Reset", "payload": {...}}   (the answer to the server's next CALLs)
        -> {"op": "ok"}
    {"op": "close"}
Writes {"op": "received", "action": ..., "payload": ...} for every CALL the server sends, and
{"op": "connected"} or {"op": "refused", "status": N} first.
"""

import asyncio
import base64
import decimal
import json
import ssl
import sys
import time

import websockets
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.routing import on

VERSION = "2.0.1" if len(sys.argv) > 4 and sys.argv[4].split(",")[0] == "ocpp2.0.1" else "1.6"
if VERSION == "2.0.1":
    from ocpp.v201 import ChargePoint, call, call_result
else:
    from ocpp.v16 import ChargePoint, call, call_result

SERVER_ACTIONS_201 = [
    "RequestStartTransaction",
    "RequestStopTransaction",
    "UnlockConnector",
    "Reset",
    "ChangeAvailability",
    "TriggerMessage",
    "GetVariables",
    "SetVariables",
    "GetBaseReport",
    "ClearCache",
    "GetLocalListVersion",
    "SendLocalList",
    "SetChargingProfile",
    "ClearChargingProfile",
    "GetChargingProfiles",
    "GetCompositeSchedule",
    "GetTransactionStatus",
    "DataTransfer",
]

DEFAULTS_201 = {
    "RequestStartTransaction": {"status": "Accepted"},
    "RequestStopTransaction": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "Reset": {"status": "Accepted"},
    "ChangeAvailability": {"status": "Accepted"},
    "TriggerMessage": {"status": "Accepted"},
    "GetBaseReport": {"status": "Accepted"},
    "ClearCache": {"status": "Accepted"},
    "SendLocalList": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "GetChargingProfiles": {"status": "NoProfiles"},
    "GetCompositeSchedule": {"status": "Rejected"},
    "GetTransactionStatus": {"messagesInQueue": False},
    "DataTransfer": {"status": "UnknownVendorId"},
}

SERVER_ACTIONS_16 = [
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "UnlockConnector",
    "Reset",
    "ChangeAvailability",
    "ChangeConfiguration",
    "GetConfiguration",
    "ClearCache",
    "GetLocalListVersion",
    "SendLocalList",
    "TriggerMessage",
    "SetChargingProfile",
    "ClearChargingProfile",
    "GetCompositeSchedule",
    "DataTransfer",
]

DEFAULTS_16 = {
    "RemoteStartTransaction": {"status": "Accepted"},
    "RemoteStopTransaction": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "Reset": {"status": "Accepted"},
    "ChangeAvailability": {"status": "Accepted"},
    "ChangeConfiguration": {"status": "Accepted"},
    "GetConfiguration": {"configurationKey": [], "unknownKey": []},
    "ClearCache": {"status": "Accepted"},
    "SendLocalList": {"status": "Accepted"},
    "TriggerMessage": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "GetCompositeSchedule": {"status": "Rejected"},
    "DataTransfer": {"status": "UnknownVendorId"},
}


def plain(o):
    # The ocpp package reads decimals as Decimal (charging rates); the test reads numbers.
    if isinstance(o, decimal.Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    return str(o)


if VERSION == "2.0.1":
    SERVER_ACTIONS, DEFAULTS = SERVER_ACTIONS_201, DEFAULTS_201
else:
    SERVER_ACTIONS, DEFAULTS = SERVER_ACTIONS_16, DEFAULTS_16


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=plain) + "\n")
    sys.stdout.flush()


class Agent(ChargePoint):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.responses = dict(DEFAULTS)
        self.list_version = 0
        self.list = {}

    def answer(self, action, kwargs):
        emit({"op": "received", "action": action, "payload": snake_to_camel_case(kwargs),
              "at": time.time()})
        if action == "GetLocalListVersion" and action not in self.responses:
            key = "versionNumber" if VERSION == "2.0.1" else "listVersion"
            payload = {key: self.list_version}
        elif action == "GetVariables" and action not in self.responses:
            payload = {"getVariableResult": [
                {"attributeStatus": "Accepted", "component": d["component"],
                 "variable": d["variable"], "attributeValue": "300"}
                for d in snake_to_camel_case(kwargs)["getVariableData"]]}
        elif action == "SetVariables" and action not in self.responses:
            payload = {"setVariableResult": [
                {"attributeStatus": "Accepted", "component": d["component"],
                 "variable": d["variable"]}
                for d in snake_to_camel_case(kwargs)["setVariableData"]]}
        else:
            payload = {k: v for k, v in self.responses[action].items() if k != "__delay"}
        if action == "SendLocalList" and payload.get("status") == "Accepted":
            if kwargs.get("update_type") == "Full":
                self.list = {}
            for entry in kwargs.get("local_authorization_list") or []:
                tag = entry["id_tag"] if "id_tag" in entry else entry["id_token"]["id_token"]
                info = entry.get("id_tag_info", entry.get("id_token_info"))
                if info is None:
                    self.list.pop(tag, None)
                else:
                    self.list[tag] = info
            self.list_version = kwargs.get("list_version", kwargs.get("version_number"))
        cls = getattr(call_result, action)
        return cls(**camel_to_snake_case(payload))


def make_handler(action):
    async def handler(self, **kwargs):
        delay = self.responses.get(action, {}).get("__delay")
        if delay:
            # A slow charger: the answer comes after the server stopped waiting.
            await asyncio.sleep(delay)
        return self.answer(action, kwargs)

    handler.__name__ = "on_" + action
    return on(action)(handler)


for _action in SERVER_ACTIONS:
    setattr(Agent, "on_" + _action, make_handler(_action))


async def control(cp, ws):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "call":
            cls = getattr(call, cmd["action"])
            payload = cls(**camel_to_snake_case(cmd.get("payload", {})))
            try:
                result = await cp.call(payload, suppress=False)
                emit({"op": "result", "payload": snake_to_camel_case(result.__dict__)})
            except Exception as e:  # a CALLERROR, a timeout or a schema failure
                emit(
                    {
                        "op": "error",
                        "code": getattr(e, "code", type(e).__name__),
                        "description": str(getattr(e, "description", e)),
                    }
                )
        elif op == "raw":
            await ws.send(cmd["text"])
            try:
                response = await cp._get_specific_response(cmd["id"], cmd.get("timeout", 5))
                emit({"op": "raw_result", "text": response.to_json()})
            except asyncio.TimeoutError:
                emit({"op": "raw_timeout"})
        elif op == "respond":
            cp.responses[cmd["action"]] = cmd["payload"]
            emit({"op": "ok"})
        elif op == "close":
            await ws.close()
            break


async def main():
    url, cid, password = sys.argv[1], sys.argv[2], sys.argv[3]
    subprotocols = (sys.argv[4] if len(sys.argv) > 4 else "ocpp1.6").split(",")
    tls = ssl.create_default_context(cafile=sys.argv[5]) if len(sys.argv) > 5 else None
    headers = {}
    if password != "-":
        token = base64.b64encode(f"{cid}:{password}".encode()).decode()
        headers["Authorization"] = "Basic " + token
    try:
        ws = await websockets.connect(
            url,
            subprotocols=subprotocols,
            additional_headers=headers,
            open_timeout=10,
            max_size=2**22,
            ssl=tls,
        )
    except websockets.exceptions.InvalidStatus as e:
        emit({"op": "refused", "status": e.response.status_code})
        return
    except Exception as e:
        emit({"op": "refused", "status": 0, "error": str(e)})
        return
    cp = Agent(cid, ws, response_timeout=15)
    emit({"op": "connected", "subprotocol": ws.subprotocol})
    runner = asyncio.create_task(cp.start())
    closer = asyncio.create_task(control(cp, ws))
    done, _ = await asyncio.wait({runner, closer}, return_when=asyncio.FIRST_COMPLETED)
    if runner in done:
        exc = runner.exception()
        rcvd = getattr(exc, "rcvd", None)
        emit(
            {
                "op": "closed",
                "code": getattr(rcvd, "code", None),
                "reason": getattr(rcvd, "reason", ""),
            }
        )
    for t in (runner, closer):
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
