#!/usr/bin/env python3
"""Station's AWS IoT emulator: moto 5.2.5's server, in process, with IoT gaps filled.

    .venv/bin/python scripts/moto-iot.py [--port 0] [--host 127.0.0.1] [--strict-verification] [-v]

Prints exactly one line on stdout, "READY <port>", once the socket is listening (port 0
picks a free port). SIGTERM/SIGINT stop it with exit code 0. Each "Emulator fix" below
follows the AWS IoT API reference; docs/aws-emulator.md explains them and the
fault-injection endpoint (/_station/faults) handled here, before moto sees the request.
Every fix works per account and region: moto keeps one IoTBackend per (account, region),
chosen from the request's SigV4 credential scope (aws --region R).
"""
import argparse, base64, collections, hashlib, json, logging, os, re, signal, sys, threading, uuid

from moto.core.config import default_user_config

# Emulator fix: certificate IDs are SHA-256 of the DER, as on AWS (moto's default hashes
# the PEM text). moto reads this flag on every certificate it parses.
default_user_config["iot"]["use_valid_cert"] = True
# Emulator fix: AWS managed policies exist in every account (moto loads them only on request), so a role can have
# arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration attached, as JITP roles do. Costs ~0.1 s per account.
default_user_config["iam"]["load_aws_managed_policies"] = True

# ruff: noqa: E401, E402
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from moto.core.responses import ActionResult, EmptyResult
from moto.core.serialize import url_encode
from moto.iam.responses import IamResponse
from moto.core.utils import utcnow
from moto.iot import models as iot_models, responses as iot_responses
from moto.iot.exceptions import InvalidRequestException, IoTClientError, ResourceAlreadyExistsException
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

Backend, Response = iot_models.IoTBackend, iot_responses.IoTResponse
STRICT_VERIFICATION = False  # set by --strict-verification

class IoTError(IoTClientError):
    def __init__(self, code, message, status=400):
        self.code = status
        super().__init__(code, message)

def _pick(value, allowed, name):
    if value is not None and value not in allowed:
        raise InvalidRequestException(f"Invalid {name}: {value}; expected one of {'|'.join(allowed)}")
    return value

# ---- backend (per account+region) --------------------------------------------------------

def get_registration_code(self):
    # Emulator fix: AWS returns the same 64-hex-char code on every call for an account and
    # region (moto returns a fresh UUID each time).
    seed = f"station-moto-registration-code/{self.account_id}/{self.region_name}"
    return hashlib.sha256(seed.encode()).hexdigest()

def _check_verification_cert(backend, ca_pem, verification_pem, mode):
    # Opt-in emulator fix (--strict-verification): AWS requires, for certificateMode DEFAULT,
    # a verification certificate whose CN is the registration code and that is signed by
    # the CA's key; for SNI_ONLY it must be absent. moto ignores it.
    if mode == "SNI_ONLY":
        if verification_pem:
            raise InvalidRequestException("verificationCertificate must be empty for certificateMode SNI_ONLY")
        return
    if not verification_pem:
        raise InvalidRequestException("verificationCertificate is required for certificateMode DEFAULT")
    try:
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
        ver = x509.load_pem_x509_certificate(verification_pem.encode())
    except ValueError:
        raise IoTError("CertificateValidationException", "The verification certificate is not a valid PEM certificate")
    cns = [a.value for a in ver.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cns != [backend.get_registration_code()]:
        raise IoTError("RegistrationCodeValidationException",
                       "The verification certificate's common name is not the registration code")
    try:
        ver.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise IoTError("CertificateValidationException", "The verification certificate is not signed by the CA's key")

def register_ca_certificate(self, ca_certificate, set_as_active, registration_config,
                            allow_auto_registration=False, certificate_mode=None, verification_certificate=None):
    # Emulator fix: keep certificateMode and autoRegistrationStatus, and refuse a second
    # registration of the same CA (AWS: 409 ResourceAlreadyExistsException; moto overwrote it).
    mode = _pick(certificate_mode, ("DEFAULT", "SNI_ONLY"), "certificateMode") or "DEFAULT"
    try:
        cert = iot_models.FakeCaCertificate(
            ca_certificate=ca_certificate, status="ACTIVE" if set_as_active else "INACTIVE",
            account_id=self.account_id, region_name=self.region_name, registration_config=registration_config)
    except (ValueError, TypeError, AttributeError):
        raise IoTError("CertificateValidationException", "The CA certificate is not a valid PEM certificate")
    # Emulator fix: a CA's ARN is ...:cacert/<id> on AWS (moto: ...:cert/<id>).
    cert.arn = cert.arn.replace(f":cert/{cert.certificate_id}", f":cacert/{cert.certificate_id}")
    if cert.certificate_id in self.ca_certificates:
        raise ResourceAlreadyExistsException("The CA certificate is already registered", cert.certificate_id, cert.arn)
    if STRICT_VERIFICATION:
        _check_verification_cert(self, ca_certificate, verification_certificate, mode)
    cert.auto_registration_status = "ENABLE" if allow_auto_registration else "DISABLE"
    cert.certificate_mode = mode
    cert.customer_version, cert.generation_id = 1, str(uuid.uuid4())
    self.ca_certificates[cert.certificate_id] = cert
    return cert

def update_ca_certificate(self, certificate_id, new_status, config, new_auto_registration_status=None):
    # Emulator fix: newStatus is limited to ACTIVE|INACTIVE and newAutoRegistrationStatus to
    # ENABLE|DISABLE (AWS answers 400 InvalidRequestException); the latter is applied too.
    _pick(new_status, ("ACTIVE", "INACTIVE"), "newStatus")
    _pick(new_auto_registration_status, ("ENABLE", "DISABLE"), "newAutoRegistrationStatus")
    cert = self.describe_ca_certificate(certificate_id)
    if new_status is not None:
        cert.status = new_status
    if new_auto_registration_status is not None:
        cert.auto_registration_status = new_auto_registration_status
    if config is not None:
        cert.registration_config = config
    cert.last_modified_date = utcnow()
    cert.customer_version = getattr(cert, "customer_version", 1) + 1
    cert.generation_id = str(uuid.uuid4())

Backend.get_registration_code = get_registration_code
Backend.register_ca_certificate = register_ca_certificate
Backend.update_ca_certificate = update_ca_certificate

# ---- responses ---------------------------------------------------------------------------

def _ca_description(cert):
    # Emulator fix: DescribeCACertificate's certificateDescription carries
    # autoRegistrationStatus, certificateMode, customerVersion, generationId and the CA's
    # real validity (moto omitted the first four and invented the validity).
    d = cert.to_description_dict()
    d.pop("transferData", None)
    d["autoRegistrationStatus"] = getattr(cert, "auto_registration_status", "DISABLE")
    d["certificateMode"] = getattr(cert, "certificate_mode", "DEFAULT")
    d["customerVersion"] = getattr(cert, "customer_version", 1)
    d["generationId"] = getattr(cert, "generation_id", cert.certificate_id)
    try:
        c = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
        d["validity"] = {"notBefore": c.not_valid_before_utc.replace(tzinfo=None),
                         "notAfter": c.not_valid_after_utc.replace(tzinfo=None)}
    except ValueError:
        pass
    return d

def r_describe_ca_certificate(self):
    cert = self.iot_backend.describe_ca_certificate(certificate_id=self.path.split("/")[-1])
    out = {"certificateDescription": _ca_description(cert)}
    if cert.registration_config:  # AWS includes it only when one was set
        out["registrationConfig"] = cert.registration_config
    return ActionResult(out)

def r_register_ca_certificate(self):
    cert = self.iot_backend.register_ca_certificate(
        ca_certificate=self._get_param("caCertificate"),
        set_as_active=self._get_bool_param("setAsActive", False),
        registration_config=self._get_param("registrationConfig"),
        allow_auto_registration=self._get_bool_param("allowAutoRegistration", False),
        certificate_mode=self._get_param("certificateMode"),
        verification_certificate=self._get_param("verificationCertificate"))
    return ActionResult({"certificateId": cert.certificate_id, "certificateArn": cert.arn})

def r_update_ca_certificate(self):
    self.iot_backend.update_ca_certificate(
        certificate_id=self.path.split("/")[-1],
        new_status=self._get_param("newStatus"),
        config=self._get_param("registrationConfig"),
        new_auto_registration_status=self._get_param("newAutoRegistrationStatus"))
    return EmptyResult()

def _page_key(cert):
    return [cert.creation_date.isoformat(), cert.certificate_id]

def _paged(self, certs, fields):
    # One page of certificates, as ListCACertificates and ListCertificatesByCA answer: pageSize
    # (1..250), an opaque marker / nextMarker and isAscendingOrder (default newest first). The
    # marker names the last item returned, so deleting certificates between pages neither skips
    # nor repeats any.
    size = self._get_int_param("pageSize", 250)
    if not 1 <= size <= 250:
        raise InvalidRequestException("pageSize must be between 1 and 250")
    ascending = self._get_bool_param("isAscendingOrder", False)
    certs = sorted(certs, key=_page_key, reverse=not ascending)
    marker = self._get_param("marker")
    if marker:
        try:
            after = json.loads(base64.urlsafe_b64decode(marker.encode()))
            assert isinstance(after, list) and all(isinstance(x, str) for x in after)
        except (ValueError, AssertionError):
            raise InvalidRequestException("Invalid marker")
        certs = [c for c in certs if (_page_key(c) > after if ascending else _page_key(c) < after)]
    page = certs[:size]
    out = {"certificates": [fields(c) for c in page]}
    if len(certs) > size:
        out["nextMarker"] = base64.urlsafe_b64encode(json.dumps(_page_key(page[-1])).encode()).decode()
    return ActionResult(out)

def r_list_ca_certificates(self):
    # Emulator fix: ListCACertificates (moto: HTTP 500 NotImplemented), paged as AWS pages it,
    # with the templateName filter.
    template = self._get_param("templateName")
    certs = [c for c in self.iot_backend.ca_certificates.values()
             if not template or (c.registration_config or {}).get("templateName") == template]
    return _paged(self, certs, lambda c: {"certificateArn": c.arn, "certificateId": c.certificate_id,
                                           "status": c.status, "creationDate": c.creation_date})

def _rule_topic(sql):
    # The topic a rule's SQL selects FROM: keywords in any case, the topic quoted (' or ") or bare; a FROM inside a
    # quoted string does not count.
    for m in re.finditer(r"'[^']*'|\"[^\"]*\"|([A-Za-z]+)", sql or ""):
        if m.group(1) and m.group(1).lower() == "from":
            rest = re.match(r"\s*(?:'([^']*)'|\"([^\"]*)\"|([^\s]+))", sql[m.end():])
            return next((g for g in rest.groups() if g is not None), None) if rest else None
    return None

def r_list_topic_rules(self):
    # Emulator fix: ListTopicRules pages (maxResults 1..10000, default 1000; opaque nextToken), filters by `topic` and
    # `ruleDisabled`, and lists each rule's topicPattern (the topic its SQL selects FROM). moto returned every rule at
    # once, ignored the parameters, and took the topic only after an upper-case FROM.
    size = self._get_int_param("maxResults", 1000)
    if not 1 <= size <= 10000:
        raise InvalidRequestException("maxResults must be between 1 and 10000")
    topic, disabled = self._get_param("topic"), self._get_param("ruleDisabled")
    rules = sorted(self.iot_backend.rules.values(), key=lambda r: r.rule_name)
    if topic:
        rules = [r for r in rules if _rule_topic(r.sql) == topic]
    if disabled is not None:
        want = str(disabled).lower() == "true"
        rules = [r for r in rules if r.rule_disabled == want]
    token = self._get_param("nextToken")
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except ValueError:
            raise InvalidRequestException("Invalid nextToken")
        rules = [r for r in rules if r.rule_name > after]
    page = rules[:size]
    out = {"rules": []}
    for r in page:
        item = {"ruleName": r.rule_name, "ruleArn": r.arn, "createdAt": r.created_at, "ruleDisabled": r.rule_disabled}
        if _rule_topic(r.sql):
            item["topicPattern"] = _rule_topic(r.sql)
        out["rules"].append(item)
    if len(rules) > size:
        out["nextToken"] = base64.urlsafe_b64encode(page[-1].rule_name.encode()).decode()
    return ActionResult(out)

Response.list_topic_rules = r_list_topic_rules
Response.describe_ca_certificate = r_describe_ca_certificate
Response.register_ca_certificate = r_register_ca_certificate
Response.update_ca_certificate = r_update_ca_certificate
Response.list_ca_certificates = r_list_ca_certificates

# ---- device certificates under a CA --------------------------------------------------------

def _der(pem):
    try:
        return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    except (ValueError, AttributeError):
        return None

def _find_ca_certificate(self, ca_certificate_pem):
    # Emulator fix: RegisterCertificate's caCertificatePem names the CA by its certificate, not by
    # its text (moto compared the PEM strings, so a line ending or header difference lost the CA).
    want = _der(ca_certificate_pem) if ca_certificate_pem else None
    for ca in self.ca_certificates.values():
        if want is not None and _der(ca.certificate_pem) == want:
            return ca.certificate_id
    return None

Backend._find_ca_certificate = _find_ca_certificate

def r_list_certificates_by_ca(self):
    # Emulator fix: ListCertificatesByCA pages like AWS (moto returned every certificate at once).
    ca_id = self.path.split("/")[-1]
    certs = [c for c in self.iot_backend.certificates.values() if c.ca_certificate_id == ca_id]
    return _paged(self, certs, lambda c: {"certificateArn": c.arn, "certificateId": c.certificate_id,
                                           "status": c.status, "certificateMode": "DEFAULT",
                                           "creationDate": c.creation_date})

Response.list_certificates_by_ca = r_list_certificates_by_ca

# ---- IAM -----------------------------------------------------------------------------------

# Emulator fix: GetPolicyVersion returns the policy document URL-encoded (RFC 3986), as AWS does and as moto already
# does for GetRole's AssumeRolePolicyDocument and GetRolePolicy's PolicyDocument (moto returned it as raw JSON).
IamResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER = {
    **IamResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER,
    "GetPolicyVersionResponse.PolicyVersion.Document": url_encode,
}

# ---- fault injection ---------------------------------------------------------------------

FAULT_KINDS = {  # error code -> (HTTP status, message), as the IoT API model declares them
    "ThrottlingException": (400, "Rate exceeded."),
    "ServiceUnavailableException": (503, "Service Unavailable."),
    "InternalFailureException": (500, "Internal Failure."),
}
IAM_FAULT_KINDS = {  # the same for IAM (awsQuery): AccessDenied is what a principal without iam:Get*/List* gets
    "AccessDenied": (403, "User: arn:aws:iam::123456789012:user/station is not authorized to perform: {action}"),
    "Throttling": (400, "Rate exceeded"),
}

class Faults:
    """Rules that make the next N matching IoT calls fail, plus a count of the IoT calls seen."""

    def __init__(self):
        self.lock, self.rules, self.calls = threading.Lock(), [], collections.Counter()

    def add(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("expected a JSON object")
        if "throttle" in spec:
            error, count = "ThrottlingException", spec["throttle"]
        else:
            error, count = spec.get("error"), spec.get("count", 1)
        service = spec.get("service", "iot")
        kinds = {"iot": FAULT_KINDS, "iam": IAM_FAULT_KINDS}.get(service)
        if kinds is None:
            raise ValueError("service must be iot or iam")
        if error not in kinds or not isinstance(count, int) or count < 0:
            raise ValueError(f"error must be one of {sorted(kinds)} for {service} and the count an integer >= 0")
        actions, region = spec.get("actions"), spec.get("region")
        with self.lock:
            self.rules.append({"error": error, "remaining": count, "actions": actions, "region": region,
                               "service": service})

    def clear(self):
        with self.lock:
            self.rules.clear()
            self.calls.clear()

    def state(self):
        with self.lock:
            return {"rules": [dict(r) for r in self.rules if r["remaining"] > 0], "calls": dict(self.calls)}

    def take(self, region, action, service="iot"):
        # IoT calls are counted as "<region>:<Action>", IAM calls (global) as "iam:<Action>".
        with self.lock:
            self.calls[f"{region}:{action}" if service == "iot" else f"iam:{action}"] += 1
            for r in self.rules:
                if r["remaining"] > 0 and r.get("service", "iot") == service \
                        and (not r["actions"] or action in r["actions"]) \
                        and (service == "iam" or not r["region"] or r["region"] == region):
                    r["remaining"] -= 1
                    return r["error"]
        return None

FAULTS = Faults()
_call_action = Response.call_action

def call_action(self):
    # Fault injection: an injected error is answered like AWS IoT (restJson1): the HTTP
    # status from the API model, header x-amzn-ErrorType: <code>, body {"message": ...}.
    error = FAULTS.take(self.region, self._get_action())
    if error is None:
        return _call_action(self)
    status, message = FAULT_KINDS[error]
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error,
               "x-amzn-RequestId": str(uuid.uuid4())}
    return status, headers, json.dumps({"message": message})

Response.call_action = call_action

_iam_call_action = IamResponse.call_action

def iam_call_action(self):
    # Fault injection for IAM (service "iam" in a rule): answered like IAM (awsQuery): the HTTP status, an XML
    # ErrorResponse with Type, Code and Message. moto cannot deny IAM reads otherwise (it authorizes nothing unless its
    # IAM auth emulation is switched on for every call).
    action = self._get_action()
    error = FAULTS.take("global", action, "iam")
    if error is None:
        return _iam_call_action(self)
    status, message = IAM_FAULT_KINDS[error]
    body = ('<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
            f"<Code>{error}</Code><Message>{message.format(action='iam:' + action)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return status, {"Content-Type": "text/xml"}, body

IamResponse.call_action = iam_call_action

def with_admin_endpoint(app):
    """GET /_station/faults: state; POST: add a rule (JSON); DELETE: clear rules and counts."""
    def wsgi(environ, start_response):
        if environ.get("PATH_INFO") != "/_station/faults":
            return app(environ, start_response)
        status, method = "200 OK", environ.get("REQUEST_METHOD")
        try:
            if method == "POST":
                FAULTS.add(json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}"))
            elif method == "DELETE":
                FAULTS.clear()
            elif method != "GET":
                status = "405 Method Not Allowed"
            payload = FAULTS.state()
        except ValueError as e:
            status, payload = "400 Bad Request", {"message": str(e)}
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(payload).encode()]
    return wsgi

# ---- main ----------------------------------------------------------------------------------

def main():
    global STRICT_VERIFICATION
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    ap.add_argument("--strict-verification", action="store_true",
                    default=os.environ.get("STATION_MOTO_STRICT_VERIFY") == "1",
                    help="check RegisterCACertificate's verification certificate like AWS")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request on stderr")
    args = ap.parse_args()
    STRICT_VERIFICATION = args.strict_verification
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)
    if os.environ.get("STATION_MOTO_THROTTLE"):
        FAULTS.add({"throttle": int(os.environ["STATION_MOTO_THROTTLE"])})

    app = with_admin_endpoint(DomainDispatcherApplication(create_backend_app))
    try:
        server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    except OSError as e:
        print(f"moto-iot: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {server.server_port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0

if __name__ == "__main__":
    sys.exit(main())
