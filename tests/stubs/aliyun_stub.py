"""A stand-in for Alibaba Cloud's voice (dyvmsapi) and SMS (dysmsapi) RPC APIs on loopback, and their receipt push.

It checks what the official SDK sends as Aliyun does: the ACS3-HMAC-SHA256 signature over the canonical request
(method, path, sorted query, the signed headers, the body's SHA-256), the access key, a 15-minute clock window
and a nonce never seen before. It answers IvrCall, SingleCallByTts and SendSms in Aliyun's shape (HTTP 200 with
`Code` "OK" or an isv.* refusal; signature and key errors as HTTP 4xx with Code, Message, Recommend).

The receipt push (HTTP 批量推送) is what Aliyun sends to the URLs configured per message type in its console:
a POST of a JSON array, no signature of any kind (Aliyun documents none), answered `{"code": 0, "msg": ...}`.

In tests: the `aliyun_stub` fixture (tests/stubs/fixtures.py). Standalone, for `make run`:
    python -m tests.stubs.aliyun_stub --port 8103 [--report-base 'http://127.0.0.1:5000/aliyun/<kind>?token=TOKEN']
(`<kind>` becomes each push's path: voice-call-report, voice-report, sms-up; TOKEN is ALIYUN_CALLBACK_TOKEN)
then ALIYUN_VMS_ENDPOINT=ALIYUN_SMS_ENDPOINT=127.0.0.1:8103, ALIYUN_PROTOCOL=http and the defaults below.
Control over HTTP: GET /_stub/calls, POST /_stub/fail, /_stub/reset, /_stub/report.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import random
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import requests
from flask import Response, g, jsonify, request

from tests.stubs.server import CONTROL_PREFIX, PlannedFailure, StubApp

DEFAULT_ACCESS_KEY_ID = "LTAI5tStubKey0000Linli"
DEFAULT_ACCESS_KEY_SECRET = "stubSecret0123456789abcdefABCDEF"
DEFAULT_SHOW_NUMBER = "057112345678"
DEFAULT_SIGN_NAME = "邻里"
# The approved templates of the stub's account: code -> words with ${variables}, as a deployer applies for them.
VOICE_TEMPLATES = {
    "TTS_300000001": "邻里紧急求助。${name}按下了求助键，地址：${address}。您能前往帮助，请按1；不能前往，请按2。",
    "TTS_300000002": "收到您按1。我们正在确认由谁前往，结果马上用短信告诉您。",
    "TTS_300000003": "好的，我们将联系下一位。",
    "TTS_300000004": "没有收到按键，我们将联系下一位。",
    # A missed daily check-in (平安打卡): what its contacts hear, and the resident's own call.
    "TTS_300000005": "邻里平安打卡提醒。${name}今天没有按时打卡，也没有接听电话，地址：${address}。"
                     "您能前往帮助，请按1；不能前往，请按2。",
    "TTS_300000006": "${name}您好，这里是邻里平安打卡。您今天还没有打卡。平安请按1。需要帮助请按2。",
    "TTS_300000007": "已为您打卡，祝您平安。再见。",
    "TTS_300000008": "好的，我们马上联系您的家人和社区工作人员。",
    "TTS_300000009": "没有收到按键，我们将联系您的家人。",
}
DEFAULT_VOICE_TEMPLATES = {"intro": "TTS_300000001", "key1": "TTS_300000002", "key2": "TTS_300000003",
                           "no_key": "TTS_300000004", "checkin_intro": "TTS_300000005",
                           "resident_intro": "TTS_300000006", "resident_key1": "TTS_300000007",
                           "resident_key2": "TTS_300000008", "resident_no_key": "TTS_300000009"}
SMS_TEMPLATES = {
    "SMS_465000001": "紧急求助：${name}（${address}）按了求助键。能前往请回复1或收到（或${code}）。",
    "SMS_465000002": "${name}的求助已由${winner}接受，无需再前往，谢谢。",
    "SMS_465000003": "已确认由您前往：${name}（${address}），电话${phone}。",
    "SMS_465000004": "这条求助已处理完毕，谢谢。",
    "SMS_465000005": "${title}：${detail}",
    # The outbox and sign-in (docs/channels.md, "SMS through Aliyun"): the generic words, a staff reply, a reminder,
    # a waitlist offer (variables: the rows' subscribe-message fields) and the verification code.
    "SMS_465000006": "邻里社区消息：${content}",
    "SMS_465000007": "社区工作人员回复您：${content}",
    "SMS_465000008": "就诊提醒：${patient}于${time}在${place}就诊（${seat}），请带身份证按时到达。",
    "SMS_465000009": "候补到号：${patient}，${time}，${place}，保留至${until}，回复“确认候补”约上，逾期让给下一位。",
    "SMS_465000010": "您的验证码是${code}，5分钟内有效，请勿告诉他人。",
}
DEFAULT_SMS_TEMPLATES = {"help_request": "SMS_465000001", "help_taken": "SMS_465000002",
                         "help_confirm": "SMS_465000003", "help_closed": "SMS_465000004",
                         "help_update": "SMS_465000005", "message": "SMS_465000006", "staff_reply": "SMS_465000007",
                         "booking_reminder": "SMS_465000008", "waitlist_offer": "SMS_465000009",
                         "verify_code": "SMS_465000010"}
# A variable of a notification template holds at most 35 characters, of a verification-code template 4 to 6 digits.
VARIABLE_MAX = 35
VERIFY_CODE_TEMPLATES = frozenset({"SMS_465000010"})
ALGORITHM = "ACS3-HMAC-SHA256"
CLOCK_SKEW = timedelta(minutes=15)
MUST_SIGN = ("host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version")
VERSION = "2017-05-25"
MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
MAINLAND_FIXED = re.compile(r"^0\d{9,11}$")
INTERNATIONAL = re.compile(r"^[1-9]\d{7,14}$")
VARIABLE = re.compile(r"\$\{(\w+)\}")
SHANGHAI = timezone(timedelta(hours=8))
# Aliyun's call result codes (呼叫状态码) the stub reports.
LISTENED, HUNG_UP_EARLY, BUSY, NOT_ANSWERED, UNREACHABLE, KEY_TIMEOUT, POWERED_OFF = (
    "200000", "200001", "200002", "200003", "200005", "200008", "200010")
KEY_PRESSED = "300000"  # VoiceCallReport: a DTMF key came
REPORT_KINDS = ("VoiceCallReport", "VoiceReport", "SmsUp")
# The path of each push in the app (app/channels/aliyun.py): what `<kind>` of --report-base becomes.
REPORT_PATHS = {"VoiceCallReport": "voice-call-report", "VoiceReport": "voice-report", "SmsUp": "sms-up"}


def canonical_query(args) -> str:
    pairs = sorted((quote(k, safe="~"), quote(v, safe="~")) for k, v in args.items(multi=True))
    return "&".join(f"{k}={v}" for k, v in pairs)


def aliyun_time(moment: datetime | None = None) -> str:
    return (moment or datetime.now(SHANGHAI)).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def error(code: str, message: str, status: int) -> Response:
    response = jsonify(RequestId=str(uuid.uuid4()).upper(), HostId="dyvmsapi.aliyuncs.com", Code=code,
                       Message=message, Recommend=f"https://api.aliyun.com/troubleshoot?q={code}")
    response.status_code = status
    return response


def refused(code: str, message: str) -> Response:
    """A business refusal: HTTP 200 and a Code other than OK (the SDK returns it; the caller must look)."""
    return jsonify(RequestId=str(uuid.uuid4()).upper(), Code=code, Message=message)


class AliyunStub(StubApp):
    """One Aliyun account's voice and SMS APIs, checking each signature and recording every request."""

    def __init__(self, *, access_key_id: str = DEFAULT_ACCESS_KEY_ID,
                 access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET, show_number: str = DEFAULT_SHOW_NUMBER,
                 sign_name: str = DEFAULT_SIGN_NAME, report_urls: dict[str, str] | None = None):
        super().__init__("aliyun_stub")
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.show_number = show_number
        self.sign_name = sign_name
        self.report_urls = dict(report_urls or {})  # message type -> the push URL set in Aliyun's console
        self._nonces: set[str] = set()
        self._calls: dict[str, dict] = {}  # CallId -> what was asked
        self._texts: list[dict] = []
        self._state_lock = threading.Lock()
        self.flask.add_url_rule("/", "rpc", self._rpc, methods=["GET", "POST"])
        self.flask.add_url_rule(f"{CONTROL_PREFIX}report", "stub_report", self._http_report, methods=["POST"])

    # --- what tests read and do ---

    def placed_calls(self) -> list[dict]:
        """The calls accepted so far, oldest first: call_id, action, to, out_id, params."""
        with self._state_lock:
            return [dict(c) for c in self._calls.values()]

    def sent_texts(self) -> list[dict]:
        """The SMS accepted so far, oldest first, with the text as the phone shows it (【sign】words)."""
        with self._state_lock:
            return [dict(t) for t in self._texts]

    @staticmethod
    def template_words(code: str) -> str:
        """The approved words of a voice or SMS template of the stub's account."""
        return VOICE_TEMPLATES.get(code) or SMS_TEMPLATES[code]

    def texts_to(self, e164: str) -> list[str]:
        number = e164.removeprefix("+").removeprefix("86") if e164.startswith("+86") else e164.removeprefix("+")
        return [t["text"] for t in self.sent_texts() if t["to"] == number]

    def report_key(self, call_id: str, digits: str, **extra) -> requests.Response:
        """Push the VoiceCallReport of a key pressed during the call (status 300000 with its dtmf)."""
        call = self._call(call_id)
        item = {"call_id": call_id, "status_code": KEY_PRESSED, "smart_status_code": "ANSWERED",
                "dtmf": digits, "status_time": aliyun_time(), "out_id": call["out_id"], **extra}
        return self.push("VoiceCallReport", [item])

    def report_end(self, call_id: str, status_code: str, *, duration: int | None = None, **extra) -> requests.Response:
        """Push the VoiceReport of how the call ended (200000 listened, 200002 busy, 200003 no answer ...)."""
        call = self._call(call_id)
        answered = status_code in (LISTENED, HUNG_UP_EARLY, KEY_TIMEOUT)
        now = datetime.now(SHANGHAI)
        seconds = duration if duration is not None else (20 if answered else 0)
        item = {"call_id": call_id, "status_code": status_code, "status_msg": "", "out_id": call["out_id"],
                "caller": self.show_number, "callee": call["to"], "duration": str(seconds),
                "start_time": aliyun_time(now - timedelta(seconds=seconds)) if answered else "",
                "end_time": aliyun_time(now) if answered else "", "originate_time": aliyun_time(now),
                "hangup_direction": "用户" if answered else "", "voice_type": "voice",
                "smart_status_code": "ANSWERED" if answered else "NOANSWER", **extra}
        return self.push("VoiceReport", [item])

    def report_sms_reply(self, e164: str, content: str) -> requests.Response:
        """Push the SmsUp of a text a phone sent back to the account's SMS."""
        number = e164.removeprefix("+86") if e164.startswith("+86") else e164.removeprefix("+")
        item = {"phone_number": number, "content": content, "sign_name": self.sign_name, "dest_code": "",
                "sequence_id": random.randrange(10**9, 10**10), "send_time": aliyun_time()}
        return self.push("SmsUp", [item])

    def push(self, kind: str, items: list[dict]) -> requests.Response:
        """POST a receipt batch as Aliyun does: a JSON array, unsigned, to the URL configured for its type."""
        return self.push_to(self.report_urls[kind], items)

    @staticmethod
    def push_to(url: str, items: list[dict]) -> requests.Response:
        body = json.dumps(items, ensure_ascii=False).encode()
        return requests.post(url, data=body, headers={"Content-Type": "application/json;charset=utf-8"},
                             timeout=15)

    def reset(self) -> None:
        super().reset()
        with self._state_lock:
            self._calls.clear()
            self._texts.clear()

    def failure_key(self) -> str:
        # Every action posts to "/": a planned failure names the action ("/IvrCall", "/SendSms").
        return "/" + request.headers.get("x-acs-action", "")

    def failure_response(self, failure: PlannedFailure) -> Response:
        status = failure.status or 200
        code = failure.message or "isp.SYSTEM_ERROR"
        return refused(code, "stub failure") if status == 200 else error(code, "stub failure", status)

    # --- the API ---

    def _rpc(self):
        g.stub_record["action"] = request.headers.get("x-acs-action")
        problem = self._check_signature()
        if problem is not None:
            return problem
        action, version = request.headers.get("x-acs-action"), request.headers.get("x-acs-version")
        handler = {"IvrCall": self._ivr_call, "SingleCallByTts": self._single_call_by_tts,
                   "SendSms": self._send_sms}.get(action)
        if handler is None or version != VERSION:
            return error("InvalidAction.NotFound", "Specified api is not found, please check your url and method.",
                         404)
        return handler(request.args)

    def _check_signature(self) -> Response | None:
        auth = request.headers.get("Authorization", "")
        match = re.fullmatch(rf"{ALGORITHM} Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]+)", auth)
        if not match:
            return error("IncompleteSignature", "The request signature does not conform to Aliyun standards.", 400)
        key_id, signed, signature = match.groups()
        if key_id != self.access_key_id:
            return error("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        names = signed.split(";")
        if names != sorted(names) or not set(MUST_SIGN) <= set(names):
            return error("IncompleteSignature", "The request signature does not conform to Aliyun standards.", 400)
        payload = hashlib.sha256(request.get_data()).hexdigest()
        if request.headers.get("x-acs-content-sha256") != payload:
            return error("IncompleteSignature", "The x-acs-content-sha256 does not match the body.", 400)
        headers = "".join(f"{n}:{request.headers.get(n, '').strip()}\n" for n in names)
        canonical = "\n".join([request.method, request.path or "/", canonical_query(request.args), headers, signed,
                               payload])
        string_to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        expected = hmac.new(self.access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return error("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 400)
        try:
            sent = datetime.strptime(request.headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return error("InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.", 400)
        if abs(datetime.now(timezone.utc) - sent) > CLOCK_SKEW:
            return error("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400)
        nonce = request.headers["x-acs-signature-nonce"]
        with self._state_lock:
            if nonce in self._nonces:
                return error("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
            self._nonces.add(nonce)
        return None

    def _ivr_call(self, args):
        missing = [p for p in ("CalledShowNumber", "CalledNumber", "StartCode") if not args.get(p)]
        if missing:
            return error(f"Missing{missing[0]}", f"{missing[0]} is mandatory for this action.", 400)
        if args["CalledShowNumber"] != self.show_number:
            return refused("isv.INVALID_CALLED_SHOW_NUMBER", "主叫号码不属于该账号")
        keys = {}
        n = 1
        while args.get(f"MenuKeyMap.{n}.Key"):
            keys[args[f"MenuKeyMap.{n}.Key"]] = (args.get(f"MenuKeyMap.{n}.Code"),
                                                 args.get(f"MenuKeyMap.{n}.TtsParams"))
            n += 1
        voices = [(args["StartCode"], args.get("StartTtsParams")), *keys.values()]
        if args.get("ByeCode"):
            voices.append((args["ByeCode"], args.get("ByeTtsParams")))
        for code, params in voices:
            problem = self._check_template(VOICE_TEMPLATES, code, params, "TTS")
            if problem is not None:
                return problem
        return self._call_placed("IvrCall", args, keys=sorted(keys))

    def _single_call_by_tts(self, args):
        missing = [p for p in ("CalledNumber", "TtsCode") if not args.get(p)]
        if missing:
            return error(f"Missing{missing[0]}", f"{missing[0]} is mandatory for this action.", 400)
        problem = self._check_template(VOICE_TEMPLATES, args["TtsCode"], args.get("TtsParam"), "TTS")
        return problem if problem is not None else self._call_placed("SingleCallByTts", args, keys=[])

    def _call_placed(self, action: str, args, *, keys: list[str]):
        number = args["CalledNumber"]
        if not (MAINLAND_MOBILE.match(number) or MAINLAND_FIXED.match(number) or INTERNATIONAL.match(number)):
            return refused("isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法")
        call_id = f"{random.randrange(10**11, 10**12)}^{random.randrange(10**10, 10**11)}"
        with self._state_lock:
            self._calls[call_id] = {"call_id": call_id, "action": action, "to": number,
                                    "out_id": args.get("OutId", ""), "keys": keys,
                                    "params": dict(args.items())}
        return jsonify(RequestId=str(uuid.uuid4()).upper(), Code="OK", Message="OK", CallId=call_id)

    def _send_sms(self, args):
        missing = [p for p in ("PhoneNumbers", "SignName", "TemplateCode") if not args.get(p)]
        if missing:
            return error(f"Missing{missing[0]}", f"{missing[0]} is mandatory for this action.", 400)
        numbers = args["PhoneNumbers"].split(",")
        if not all(MAINLAND_MOBILE.match(n) or INTERNATIONAL.match(n) for n in numbers):
            return refused("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if args["SignName"] != self.sign_name:
            return refused("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        problem = self._check_template(SMS_TEMPLATES, args["TemplateCode"], args.get("TemplateParam"), "SMS")
        if problem is not None:
            return problem
        params = json.loads(args.get("TemplateParam") or "{}")
        if args["TemplateCode"] in VERIFY_CODE_TEMPLATES:
            too_long = [k for k, v in params.items() if not re.fullmatch(r"\d{4,6}", v)]
        else:
            too_long = [k for k, v in params.items() if len(v) > VARIABLE_MAX]
        if too_long:
            return refused("isv.PARAM_LENGTH_LIMIT", f"参数超出长度限制：{','.join(too_long)}")
        words = VARIABLE.sub(lambda m: str(params[m.group(1)]), SMS_TEMPLATES[args["TemplateCode"]])
        biz_id = f"{random.randrange(10**14, 10**15)}^0"
        with self._state_lock:
            for number in numbers:
                self._texts.append({"biz_id": biz_id, "to": number, "template": args["TemplateCode"],
                                    "params": params, "text": f"【{args['SignName']}】{words}",
                                    "out_id": args.get("OutId")})
        return jsonify(RequestId=str(uuid.uuid4()).upper(), Code="OK", Message="OK", BizId=biz_id)

    @staticmethod
    def _check_template(templates: dict, code: str, raw_params: str | None, kind: str) -> Response | None:
        if code not in templates:
            return refused(f"isv.{kind}_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            params = json.loads(raw_params) if raw_params else {}
        except ValueError:
            return refused("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            return refused("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        missing = [v for v in VARIABLE.findall(templates[code]) if not params.get(v)]
        if missing:
            return refused("isv.TEMPLATE_MISSING_PARAMETERS", f"模板缺少变量：{','.join(missing)}")
        return None

    def _call(self, call_id: str) -> dict:
        with self._state_lock:
            return dict(self._calls[call_id])

    # --- control over HTTP ---

    def _http_report(self):
        body = request.get_json(force=True)
        kind = body.get("kind")
        if kind == "key":
            answer = self.report_key(body["call_id"], body["digits"])
        elif kind == "end":
            answer = self.report_end(body["call_id"], body["status_code"])
        elif kind == "sms_reply":
            answer = self.report_sms_reply(body["phone"], body["content"])
        else:
            answer = self.push(kind, body.get("items", []))
        return jsonify(status=answer.status_code, body=answer.text[:2000])


def report_urls(report_base: str) -> dict[str, str]:
    """Each message type's push URL from a base with `<kind>` where the app's path goes."""
    return {kind: report_base.replace("<kind>", path) for kind, path in REPORT_PATHS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8103)
    parser.add_argument("--report-base", default="",
                        help="the app's push URL with <kind> for each push's path, e.g. "
                             "'http://127.0.0.1:5000/aliyun/<kind>?token=TOKEN'")
    args = parser.parse_args()
    urls = report_urls(args.report_base) if args.report_base else {}
    stub = AliyunStub(report_urls=urls)
    try:
        stub.serve(host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
