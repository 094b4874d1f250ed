#!/usr/bin/env bash
# Self-check of scripts/moto-iot.py (moto + station's IoT emulator fixes), driven by awscli
# as an independent client, in two regions, with CAs made by openssl in a temp dir.
# Ends with "N passed, M failed"; exits non-zero on any failure. See docs/aws-emulator.md.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$REPO/scripts/python-env.sh" || { echo "python-env.sh failed"; echo "0 passed, 1 failed"; exit 1; }
VENV="${STATION_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"
AWS="$VENV/bin/aws"
TEMPLATE="$REPO/schemas/jitp-template.json"
REGIONS=(us-east-1 eu-central-1)
ROLE_ARN="arn:aws:iam::123456789012:role/StationJITP"

TMP="$(mktemp -d)"
MOTO_PID=""
cleanup() {
    if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null; wait "$MOTO_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASSED=0 FAILED=0
ok()   { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
bad()  { FAILED=$((FAILED + 1)); echo "FAIL - $1"; [[ -n "${2:-}" ]] && sed 's/^/       /' <<<"$2"; return 0; }
# eq NAME EXPECTED ACTUAL
eq()   { if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1" "expected: $2"$'\n'"actual:   $3"; fi; }
finish() { echo "$PASSED passed, $FAILED failed"; [[ $FAILED -eq 0 ]]; exit $?; }
die()  { bad "$1" "${2:-}"; finish; }

# ---- start the launcher, read its port --------------------------------------------------
"$PY" "$REPO/scripts/moto-iot.py" --port 0 --strict-verification >"$TMP/moto.out" 2>"$TMP/moto.err" &
MOTO_PID=$!
PORT=""
for _ in $(seq 1 300); do
    PORT="$(awk '$1 == "READY" {print $2; exit}' "$TMP/moto.out")"
    [[ -n "$PORT" ]] && break
    kill -0 "$MOTO_PID" 2>/dev/null || break
    sleep 0.1
done
[[ -n "$PORT" ]] || die "launcher prints READY <port>" "$(cat "$TMP/moto.err")"
ok "launcher prints READY $PORT"
EP="http://127.0.0.1:$PORT"

export AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_DEFAULT_OUTPUT=json
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION AWS_ENDPOINT_URL
iot() { local region="$1"; shift; "$AWS" --endpoint-url "$EP" --region "$region" iot "$@"; }
# json FILTER_PYTHON_EXPR < json   (d is the parsed document)
json() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); r='"$1"'; print(r if isinstance(r,str) else json.dumps(r))'; }
faults() { "$PY" - "$EP/_station/faults" "$@" <<'EOF'
import sys, urllib.request
url, method, body = sys.argv[1], sys.argv[2], (sys.argv[3].encode() if len(sys.argv) > 3 else None)
req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(req).read().decode())
EOF
}
# expect_error NAME CODE cmd...  : the command must fail and awscli must name CODE
expect_error() {
    local name="$1" code="$2" out; shift 2
    if out="$("$@" 2>&1)"; then bad "$name" "succeeded, expected $code: $out"
    elif grep -q "($code)" <<<"$out"; then ok "$name"
    else bad "$name" "expected $code, got: $out"; fi
}
# page_all REGION ASCENDING [COMMAND [FIELDS]] : walks COMMAND (default list-ca-certificates) one item per page, its
# request carrying the JSON FIELDS too; sets PAGED
page_all() {
    local marker="" pages=0 ids="" page req cmd="${3:-list-ca-certificates}" fields="${4:+$4, }"
    while :; do
        req='{'"$fields"'"pageSize": 1, "ascendingOrder": '"$2${marker:+, \"marker\": \"$marker\"}"'}'
        page="$(iot "$1" "$cmd" --no-paginate --cli-input-json "$req" 2>&1)" || { PAGED="error: $page"; return; }
        pages=$((pages + 1))
        ids+=" $(json '" ".join(c["certificateId"] for c in d["certificates"])' <<<"$page")"
        marker="$(json 'd.get("nextMarker", "")' <<<"$page")"
        [[ -z "$marker" || $pages -ge 10 ]] && break
    done
    PAGED="$pages pages:$ids"
}
# raw METHOD PATH REGION : a request without an SDK (moto does not check signatures),
# printing "status x-amzn-ErrorType body"
raw() { "$PY" - "$EP" "$@" <<'EOF'
import sys, urllib.request, urllib.error
ep, method, path, region = sys.argv[1:5]
req = urllib.request.Request(ep + path, method=method, headers={"Authorization":
    f"AWS4-HMAC-SHA256 Credential=testing/20250101/{region}/iot/aws4_request, SignedHeaders=host, Signature=0"})
try:
    r = urllib.request.urlopen(req); print(r.status, "-", r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("x-amzn-ErrorType"), e.read().decode())
EOF
}
der_sha256() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }

# ---- test material -------------------------------------------------------------------
[[ -f "$TEMPLATE" ]] && "$PY" - "$TEMPLATE" <<'EOF' && ok "jitp-template.json: valid JSON, PolicyDocument valid JSON" || bad "jitp-template.json is valid"
import json, sys
t = json.load(open(sys.argv[1]))
assert set(t["Parameters"]) == {"AWS::IoT::Certificate::CommonName", "AWS::IoT::Certificate::SerialNumber", "AWS::IoT::Certificate::Id"}
pol = json.loads(t["Resources"]["policy"]["Properties"]["PolicyDocument"])
acts = sorted(a for s in pol["Statement"] for a in s["Action"])
assert acts == ["iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"], acts
assert t["Resources"]["certificate"]["Properties"]["Status"] == "ACTIVE"
EOF
"$PY" -c 'import json,sys; print(json.dumps({"templateBody": open(sys.argv[1]).read(), "roleArn": sys.argv[2]}))' \
    "$TEMPLATE" "$ROLE_ARN" >"$TMP/regcfg.json"

mkca() {  # mkca NAME : self-signed P-256 CA
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/$1.key" \
        -out "$TMP/$1.pem" -days 30 -subj "/O=Station Test/CN=$1" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
mkverif() {  # mkverif OUT CA CN : verification cert with CN, signed by CA's key
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/$1.key" \
        -subj "/CN=$3" -out "$TMP/$1.csr" 2>/dev/null &&
    openssl x509 -req -in "$TMP/$1.csr" -CA "$TMP/$2.pem" -CAkey "$TMP/$2.key" -CAcreateserial \
        -days 1 -sha256 -out "$TMP/$1.pem" 2>/dev/null
}
for c in ca1 ca2 ca3 ca4 rogue; do mkca "$c" || die "openssl makes CA $c"; done

# ---- per region --------------------------------------------------------------------------
declare -A CODE
for R in "${REGIONS[@]}"; do
    echo "# region $R"
    eq "$R: no CA yet (regions are isolated)" "0" "$(iot "$R" list-ca-certificates | json 'str(len(d["certificates"]))')"

    c1="$(iot "$R" get-registration-code | json 'd["registrationCode"]')"
    c2="$(iot "$R" get-registration-code | json 'd["registrationCode"]')"
    eq "$R: get-registration-code is stable" "$c1" "$c2"
    [[ "$c1" =~ ^[0-9a-f]{64}$ ]] && ok "$R: registration code is 64 hex chars" || bad "$R: registration code is 64 hex chars" "$c1"
    CODE[$R]="$c1"
    mkverif "v1-$R" ca1 "$c1" && mkverif "v2-$R" ca2 "$c1" && mkverif "v4-$R" ca4 "$c1" \
        && mkverif "v4bad-$R" ca4 "not-the-code" && mkverif "v4rogue-$R" rogue "$c1" || die "openssl makes verification certs"

    out="$(iot "$R" register-ca-certificate --ca-certificate "file://$TMP/ca1.pem" \
        --verification-certificate "file://$TMP/v1-$R.pem" --set-as-active --allow-auto-registration \
        --certificate-mode DEFAULT --registration-config "file://$TMP/regcfg.json" 2>&1)" \
        || die "$R: register-ca-certificate ca1" "$out"
    id1="$(json 'd["certificateId"]' <<<"$out")"
    eq "$R: certificateId is SHA-256 of the DER" "$(der_sha256 "$TMP/ca1.pem")" "$id1"
    [[ "$(json 'd["certificateArn"]' <<<"$out")" == "arn:aws:iot:$R:123456789012:cacert/$id1" ]] \
        && ok "$R: certificateArn names region $R" || bad "$R: certificateArn names region $R" "$out"

    desc="$(iot "$R" describe-ca-certificate --certificate-id "$id1")"
    eq "$R: describe status ACTIVE" "ACTIVE" "$(json 'd["certificateDescription"]["status"]' <<<"$desc")"
    eq "$R: describe autoRegistrationStatus ENABLE" "ENABLE" "$(json 'd["certificateDescription"]["autoRegistrationStatus"]' <<<"$desc")"
    eq "$R: describe certificateMode DEFAULT" "DEFAULT" "$(json 'd["certificateDescription"]["certificateMode"]' <<<"$desc")"
    eq "$R: describe registrationConfig.templateBody is the template" "$(cat "$TEMPLATE")" "$(json 'd["registrationConfig"]["templateBody"]' <<<"$desc")"
    eq "$R: describe registrationConfig.roleArn" "$ROLE_ARN" "$(json 'd["registrationConfig"]["roleArn"]' <<<"$desc")"
    eq "$R: describe validity.notAfter is the CA's" "$(date -u -d "$(openssl x509 -in "$TMP/ca1.pem" -noout -enddate | cut -d= -f2)" +%F)" \
        "$(json 'str(__import__("datetime").datetime.fromtimestamp(d["certificateDescription"]["validity"]["notAfter"], __import__("datetime").timezone.utc).date())' <<<"$desc")"

    iot "$R" update-ca-certificate --certificate-id "$id1" --new-auto-registration-status DISABLE \
        && ok "$R: update --new-auto-registration-status DISABLE" || bad "$R: update --new-auto-registration-status DISABLE"
    eq "$R: describe then shows DISABLE" "DISABLE" \
        "$(iot "$R" describe-ca-certificate --certificate-id "$id1" | json 'd["certificateDescription"]["autoRegistrationStatus"]')"
    expect_error "$R: update --new-status REVOKED rejected" InvalidRequestException \
        iot "$R" update-ca-certificate --certificate-id "$id1" --new-status REVOKED
    expect_error "$R: update --new-auto-registration-status MAYBE rejected" InvalidRequestException \
        iot "$R" update-ca-certificate --certificate-id "$id1" --new-auto-registration-status MAYBE
    eq "$R: status unchanged after rejected update" "ACTIVE" \
        "$(iot "$R" describe-ca-certificate --certificate-id "$id1" | json 'd["certificateDescription"]["status"]')"
    iot "$R" update-ca-certificate --certificate-id "$id1" --new-status INACTIVE --new-auto-registration-status ENABLE
    eq "$R: update --new-status INACTIVE --new-auto-registration-status ENABLE applied" "INACTIVE ENABLE" \
        "$(iot "$R" describe-ca-certificate --certificate-id "$id1" | json 'd["certificateDescription"]["status"]+" "+d["certificateDescription"]["autoRegistrationStatus"]')"
    expect_error "$R: second register of the same CA fails" ResourceAlreadyExistsException \
        iot "$R" register-ca-certificate --ca-certificate "file://$TMP/ca1.pem" --verification-certificate "file://$TMP/v1-$R.pem"

    id2="$(iot "$R" register-ca-certificate --ca-certificate "file://$TMP/ca2.pem" \
        --verification-certificate "file://$TMP/v2-$R.pem" | json 'd["certificateId"]')"
    desc="$(iot "$R" describe-ca-certificate --certificate-id "$id2")"
    eq "$R: defaults: INACTIVE, DISABLE, DEFAULT, no registrationConfig" "INACTIVE DISABLE DEFAULT False" \
        "$(json '" ".join([d["certificateDescription"][k] for k in ("status","autoRegistrationStatus","certificateMode")]+[str("registrationConfig" in d)])' <<<"$desc")"
    id3="$(iot "$R" register-ca-certificate --ca-certificate "file://$TMP/ca3.pem" --certificate-mode SNI_ONLY \
        --set-as-active | json 'd["certificateId"]')"
    eq "$R: SNI_ONLY registration shows certificateMode SNI_ONLY" "SNI_ONLY" \
        "$(iot "$R" describe-ca-certificate --certificate-id "$id3" | json 'd["certificateDescription"]["certificateMode"]')"

    # --strict-verification: the verification cert is checked like AWS does
    expect_error "$R: verification cert with a wrong CN rejected" RegistrationCodeValidationException \
        iot "$R" register-ca-certificate --ca-certificate "file://$TMP/ca4.pem" --verification-certificate "file://$TMP/v4bad-$R.pem"
    expect_error "$R: verification cert signed by another key rejected" CertificateValidationException \
        iot "$R" register-ca-certificate --ca-certificate "file://$TMP/ca4.pem" --verification-certificate "file://$TMP/v4rogue-$R.pem"
    expect_error "$R: DEFAULT mode without verification cert rejected" InvalidRequestException \
        iot "$R" register-ca-certificate --ca-certificate "file://$TMP/ca4.pem"
    expect_error "$R: certificateMode BOGUS rejected" InvalidRequestException \
        iot "$R" register-ca-certificate --ca-certificate "file://$TMP/ca4.pem" --certificate-mode BOGUS

    # paging through the 3 CAs, one per page, following nextMarker by hand (awscli v1 turns
    # its own paginator off when --page-size is given, so the pages are walked here)
    page_all "$R" true;  eq "$R: list pageSize 1, ascending: 3 pages (nextMarker), creation order" \
        "3 pages: $id1 $id2 $id3" "$PAGED"
    page_all "$R" false; eq "$R: list pageSize 1, default order: 3 pages, newest first" \
        "3 pages: $id3 $id2 $id1" "$PAGED"
    eq "$R: list entries carry certificateArn, certificateId, creationDate, status" \
        '["certificateArn", "certificateId", "creationDate", "status"]' \
        "$(iot "$R" list-ca-certificates | json 'sorted(set(k for c in d["certificates"] for k in c))')"
    eq "$R: list pageSize 0 rejected by the server" "400 InvalidRequestException" \
        "$(raw GET "/cacertificates?pageSize=0" "$R" | cut -d' ' -f1,2)"
done
[[ "${CODE[${REGIONS[0]}]}" != "${CODE[${REGIONS[1]}]}" ]] && ok "registration codes differ per region" \
    || bad "registration codes differ per region"

# ---- device certificates under a CA (ListCertificatesByCA) --------------------------------
R="${REGIONS[0]}"
mkca devca || die "openssl makes CA devca"
devca_id="$(iot "$R" register-ca-certificate --ca-certificate "file://$TMP/devca.pem" --certificate-mode SNI_ONLY \
    --set-as-active | json 'd["certificateId"]')"
# the CA's PEM as another tool writes it (CRLF line ends): the same certificate
sed 's/$/\r/' "$TMP/devca.pem" >"$TMP/devca-crlf.pem"
dev_ids=""
for d in dev1 dev2 dev3; do
    mkverif "$d" devca "$d" || die "openssl makes device certificate $d"
    iot "$R" register-certificate --certificate-pem "file://$TMP/$d.pem" \
        --ca-certificate-pem "file://$TMP/devca-crlf.pem" --status ACTIVE >/dev/null || bad "register-certificate $d"
    dev_ids+=" $(der_sha256 "$TMP/$d.pem")"
done
page_all "$R" true list-certificates-by-ca '"caCertificateId": "'"$devca_id"'"'
eq "list-certificates-by-ca: the CA is found by its certificate, not its text; pageSize 1 pages in creation order" \
    "3 pages:$dev_ids" "$PAGED"
eq "list-certificates-by-ca: entries carry certificateArn, certificateId, certificateMode, creationDate, status" \
    '["certificateArn", "certificateId", "certificateMode", "creationDate", "status"]' \
    "$(iot "$R" list-certificates-by-ca --ca-certificate-id "$devca_id" | json 'sorted(set(k for c in d["certificates"] for k in c))')"
eq "list-certificates-by-ca pageSize 0 rejected by the server" "400 InvalidRequestException" \
    "$(raw GET "/certificates-by-ca/$devca_id?pageSize=0" "$R" | cut -d' ' -f1,2)"

# ---- topic rules (JITR) and IAM (JITP role) ------------------------------------------------
R="${REGIONS[0]}"
iam() { "$AWS" --endpoint-url "$EP" --region us-east-1 iam "$@"; }
LAMBDA='[{"lambda":{"functionArn":"arn:aws:lambda:'"$R"':123456789012:function:activate"}}]'
for n in 1 2 3; do
    iot "$R" create-topic-rule --rule-name "line_$n" \
        --topic-rule-payload '{"sql":"SELECT * FROM '"'line/$n/status'"'","actions":'"$LAMBDA"'}' >/dev/null
done
iot "$R" create-topic-rule --rule-name jitr --topic-rule-payload \
    '{"sql":"select '"'from'"' as a from \"$aws/events/certificates/registered/+\"","actions":[],"ruleDisabled":true}' \
    >/dev/null || bad "create-topic-rule jitr"
eq "list-topic-rules: topicPattern from a lower-case FROM, a double-quoted topic" \
    '$aws/events/certificates/registered/+' \
    "$(iot "$R" list-topic-rules | json '[r.get("topicPattern") for r in d["rules"] if r["ruleName"] == "jitr"][0]')"
page1="$(raw GET "/rules?maxResults=2" "$R")"
eq "list-topic-rules maxResults=2: 2 rules and a nextToken" "200 2 True" \
    "$(cut -d' ' -f1 <<<"$page1") $(cut -d' ' -f3- <<<"$page1" | json 'str(len(d["rules"])) + " " + str("nextToken" in d)')"
tok="$(cut -d' ' -f3- <<<"$page1" | json 'd["nextToken"]')"
eq "list-topic-rules: the next page holds the other 2, and no token" "line_2 line_3 False" \
    "$(raw GET "/rules?maxResults=2&nextToken=$tok" "$R" | cut -d' ' -f3- | json '" ".join(r["ruleName"] for r in d["rules"]) + " " + str("nextToken" in d)')"
eq "list-topic-rules --rule-disabled filters" "jitr" \
    "$(iot "$R" list-topic-rules --rule-disabled | json '" ".join(r["ruleName"] for r in d["rules"])')"
eq "list-topic-rules --topic filters" "line_2" \
    "$(iot "$R" list-topic-rules --topic line/2/status | json '" ".join(r["ruleName"] for r in d["rules"])')"
eq "list-topic-rules maxResults=0 rejected" "400" "$(raw GET "/rules?maxResults=0" "$R" | cut -d' ' -f1)"
TRUST='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"iot.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
iam create-role --role-name StationJITP --assume-role-policy-document "$TRUST" >/dev/null || bad "iam create-role"
out="$(iam attach-role-policy --role-name StationJITP \
    --policy-arn arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration 2>&1)" \
    && ok "AWSIoTThingsRegistration (an AWS managed policy) can be attached" \
    || bad "AWSIoTThingsRegistration (an AWS managed policy) can be attached" "$out"
eq "list-attached-role-policies names it" "AWSIoTThingsRegistration" \
    "$(iam list-attached-role-policies --role-name StationJITP | json '" ".join(p["PolicyName"] for p in d["AttachedPolicies"])')"
# raw IAM (awsQuery), so the document is seen as the SDK sees it, before awscli's decoding
iamraw() { "$PY" - "$EP" "$1" <<'EOF'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/?" + sys.argv[2] + "&Version=2010-05-08", headers={"Authorization":
    "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0"})
print(urllib.request.urlopen(req).read().decode())
EOF
}
doc="$(iamraw "Action=GetPolicyVersion&PolicyArn=arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration&VersionId=v3")"
[[ "$doc" == *"<Document>%7B"* && "$doc" == *"iot%3ACreateThing"* ]] \
    && ok "get-policy-version: the document is URL-encoded and grants iot:CreateThing" \
    || bad "get-policy-version: the document is URL-encoded and grants iot:CreateThing" "$doc"
[[ "$(iamraw "Action=GetRole&RoleName=StationJITP")" == *"<AssumeRolePolicyDocument>%7B"* ]] \
    && ok "get-role: the trust policy is URL-encoded" || bad "get-role: the trust policy is URL-encoded"
faults DELETE >/dev/null
faults POST '{"service": "iam", "error": "AccessDenied", "actions": ["GetRole"], "count": 1}' >/dev/null
expect_error "iam fault: GetRole answered AccessDenied" AccessDenied iam get-role --role-name StationJITP
iam get-role --role-name StationJITP >/dev/null && ok "iam fault: only the next call" || bad "iam fault: only the next call"
eq "iam calls are counted as iam:<Action>" "2" "$(faults GET | json 'str(d["calls"].get("iam:GetRole", 0))')"

# ---- fault injection ---------------------------------------------------------------------
faults DELETE >/dev/null
faults POST '{"throttle": 1}' >/dev/null
expect_error "throttle 1: next call fails with ThrottlingException" ThrottlingException iot "$R" get-registration-code
iot "$R" get-registration-code >/dev/null && ok "throttle 1: the call after succeeds" || bad "throttle 1: the call after succeeds"
calls_register() { faults GET | json 'str(d["calls"].get("'"$R"':RegisterCACertificate", 0))'; }
n0="$(calls_register)"
faults POST '{"throttle": 2, "actions": ["RegisterCACertificate"], "region": "'"$R"'"}' >/dev/null
iot "$R" get-registration-code >/dev/null && ok "throttle filtered by action: other calls pass" || bad "throttle filtered by action: other calls pass"
expect_error "throttle filtered by action: RegisterCACertificate throttled" ThrottlingException \
    iot "$R" register-ca-certificate --ca-certificate "file://$TMP/ca4.pem" --certificate-mode SNI_ONLY
eq "GET /_station/faults: 1 throttle left" "1" "$(faults GET | json 'str(d["rules"][0]["remaining"])')"
eq "GET /_station/faults: throttled calls are counted" "$((n0 + 1))" "$(calls_register)"
faults DELETE >/dev/null
faults POST '{"throttle": 1}' >/dev/null
# the raw wire shape (no SDK in between): 400, x-amzn-ErrorType, {"message": ...}
raw_out="$(raw GET /registrationcode "$R")"
eq "throttled call on the wire: 400 + x-amzn-ErrorType + message body" '400 ThrottlingException {"message": "Rate exceeded."}' "$raw_out"
faults POST '{"throttle": -1}' >/dev/null 2>&1 && bad "bad fault spec rejected" || ok "bad fault spec rejected"

# ---- clean stop --------------------------------------------------------------------------
kill -TERM "$MOTO_PID"
rc=0; wait "$MOTO_PID" || rc=$?
MOTO_PID=""
eq "launcher exits 0 on SIGTERM" "0" "$rc"
finish
