use super::*;
use crate::aws::dry_run::rules::POLICY_DOCUMENT_MAX;
use crate::aws::template::BUILTIN;

fn device(cn: &str) -> CertFields {
    CertFields {
        common_name: Some(cn.into()),
        serial_number: Some(cn.into()),
        id: "ab".repeat(32),
        ..Default::default()
    }
}

fn codes(r: Result<Plan, Vec<Problem>>) -> Vec<&'static str> {
    r.expect_err("a failure").iter().map(|p| p.code).collect()
}

#[test]
fn the_builtin_template_makes_a_thing_named_after_the_serial_an_active_certificate_and_its_policy() {
    let plan = evaluate(BUILTIN, &device("ACME-0001")).expect("provisions");
    let thing = plan.thing.expect("a thing");
    assert_eq!(thing.name, "ACME-0001");
    assert_eq!(thing.attributes.get("serialNumber").map(String::as_str), Some("ACME-0001"));
    assert_eq!(plan.certificate_status.as_deref(), Some("ACTIVE"));
    match &plan.policies[..] {
        [PolicyPlan::Document { actions, characters }] => {
            assert_eq!(actions, &["iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"]);
            assert!(*characters > 100 && *characters <= POLICY_DOCUMENT_MAX);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_serial_that_cannot_be_a_thing_name_fails_as_aws_would() {
    assert_eq!(codes(evaluate(BUILTIN, &device("ACME.0001"))), ["aws-template-thing-name-invalid"]);
    assert_eq!(codes(evaluate(BUILTIN, &device(&"A".repeat(129)))), ["aws-template-thing-name-invalid"]);
    evaluate(BUILTIN, &device(&"A".repeat(128))).expect("128 characters is the limit");
}

#[test]
fn a_parameter_the_certificate_lacks_fails_unless_it_has_a_default() {
    let body = r#"{"Parameters": {"AWS::IoT::Certificate::Organization": {"Type": "String"}},
        "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName":
            {"Fn::Join": ["-", [{"Ref": "AWS::IoT::Certificate::Organization"}, {"Ref": "AWS::IoT::Certificate::CommonName"}]]}}},
        "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}}}}"#;
    assert_eq!(codes(evaluate(body, &device("D1"))), ["aws-template-parameter-unfilled"]);
    let with_o = CertFields { organization: Some("Acme".into()), ..device("D1") };
    assert_eq!(evaluate(body, &with_o).unwrap().thing.unwrap().name, "Acme-D1");
    let defaulted = body.replace(r#"{"Type": "String"}"#, r#"{"Type": "String", "Default": "Nobody"}"#);
    assert_eq!(evaluate(&defaulted, &device("D1")).unwrap().thing.unwrap().name, "Nobody-D1");
}

#[test]
fn functions_and_conditions_are_applied() {
    let body = r#"{
      "Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"}, "Site": {"Type": "String", "Default": "plant-7"}},
      "Mappings": {"Lines": {"plant-7": {"group": "line-7"}}},
      "Conditions": {"IsAcme": {"Fn::Equals": [{"Fn::Select": [0, {"Fn::Split": ["-", {"Ref": "AWS::IoT::Certificate::CommonName"}]}]}, "ACME"]},
                     "NotAcme": {"Fn::Not": [{"Condition": "IsAcme"}]}},
      "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
          "ThingName": {"Fn::Sub": "${Site}_${AWS::IoT::Certificate::CommonName}"},
          "AttributePayload": {"vendor": {"Fn::If": ["IsAcme", "acme", "other"]}, "raw": {"Fn::Sub": ["${a}-x", {"a": "v"}]},
                               "gone": {"Fn::If": ["NotAcme", "x", {"Ref": "AWS::NoValue"}]}},
          "ThingGroups": [{"Fn::FindInMap": ["Lines", {"Ref": "Site"}, "group"]}]}},
        "extra": {"Type": "AWS::IoT::Policy", "Condition": "NotAcme", "Properties": {"PolicyName": "never"}},
        "named": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "DevicePolicy"}},
        "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}}}}"#;
    let plan = evaluate(body, &device("ACME-0001")).unwrap();
    let thing = plan.thing.unwrap();
    assert_eq!(thing.name, "plant-7_ACME-0001");
    assert_eq!(thing.attributes.get("vendor").map(String::as_str), Some("acme"));
    assert_eq!(thing.attributes.get("raw").map(String::as_str), Some("v-x"));
    assert!(!thing.attributes.contains_key("gone"), "AWS::NoValue leaves the property out");
    assert_eq!(thing.groups, ["line-7"]);
    assert_eq!(plan.policies, [PolicyPlan::Named("DevicePolicy".into())], "the conditional policy is left out");
    let other = evaluate(body, &device("OTHER-1")).unwrap();
    assert_eq!(other.thing.unwrap().attributes.get("gone").map(String::as_str), Some("x"));
    assert_eq!(other.policies.len(), 2);
}

#[test]
fn an_inactive_or_missing_certificate_resource_means_the_device_is_refused() {
    let inactive = BUILTIN.replace("\"Status\": \"ACTIVE\"", "\"Status\": \"INACTIVE\"");
    assert_eq!(codes(evaluate(&inactive, &device("D1"))), ["aws-jitp-certificate-not-active"]);
    let v: Value = serde_json::from_str(BUILTIN).unwrap();
    let mut v2 = v.clone();
    v2["Resources"].as_object_mut().unwrap().remove("certificate");
    assert_eq!(codes(evaluate(&v2.to_string(), &device("D1"))), ["aws-jitp-certificate-not-active"]);
}

#[test]
fn attributes_policies_and_unsupported_parts_are_checked() {
    let v: Value = serde_json::from_str(BUILTIN).unwrap();
    let mut many = v.clone();
    let attrs = many["Resources"]["thing"]["Properties"]["AttributePayload"].as_object_mut().unwrap();
    for k in ["a", "b", "c"] {
        attrs.insert(k.into(), Value::String("x".into()));
    }
    assert_eq!(codes(evaluate(&many.to_string(), &device("D1"))), ["aws-jitp-attribute-invalid"]);
    many["Resources"]["thing"]["Properties"]["ThingTypeName"] = Value::String("sensor".into());
    evaluate(&many.to_string(), &device("D1")).expect("a typed thing may have 50 attributes");

    let mut spaced = v.clone();
    spaced["Resources"]["thing"]["Properties"]["AttributePayload"]["site"] = Value::String("hall 7".into());
    assert_eq!(codes(evaluate(&spaced.to_string(), &device("D1"))), ["aws-jitp-attribute-invalid"]);

    let mut big = v.clone();
    let stmt = r#"{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["arn:aws:iot:*:*:client/x"]}"#;
    big["Resources"]["policy"]["Properties"]["PolicyDocument"] =
        Value::String(format!(r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#, vec![stmt; 40].join(",")));
    assert_eq!(codes(evaluate(&big.to_string(), &device("D1"))), ["aws-jitp-policy-invalid"]);
    let mut broken = v.clone();
    broken["Resources"]["policy"]["Properties"]["PolicyDocument"] = Value::String("{not json".into());
    assert_eq!(codes(evaluate(&broken.to_string(), &device("D1"))), ["aws-jitp-policy-invalid"]);

    let mut foreign = v.clone();
    foreign["Resources"]["bucket"] = serde_json::json!({"Type": "AWS::S3::Bucket"});
    assert_eq!(codes(evaluate(&foreign.to_string(), &device("D1"))), ["aws-template-invalid"]);
    let mut func = v;
    func["Resources"]["thing"]["Properties"]["ThingName"] = serde_json::json!({"Fn::GetAZs": ""});
    assert_eq!(codes(evaluate(&func.to_string(), &device("D1"))), ["aws-template-invalid"]);
    assert_eq!(codes(evaluate("{not json", &device("D1"))), ["aws-template-invalid"]);
}

#[test]
fn subject_fields_are_read_from_a_real_certificate() {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "SN-42");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme");
    params.distinguished_name.push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "SN-42");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let f = CertFields::from_der(cert.der()).unwrap();
    assert_eq!(f.common_name.as_deref(), Some("SN-42"));
    assert_eq!(f.serial_number.as_deref(), Some("SN-42"));
    assert_eq!(f.organization.as_deref(), Some("Acme"));
    assert_eq!(f.country, None);
    assert_eq!(f.id, pki::sha256_hex(cert.der()));
    assert_eq!(f.parameter("Id"), Some(f.id.as_str()));
}

#[test]
fn sub_keeps_an_escaped_literal_and_refuses_an_unknown_name() {
    let (cert, empty) = (device("D1"), Map::new());
    let ev = Evaluator { cert: &cert, declared: &empty, mappings: &empty, conditions: &empty, resources: &empty };
    assert_eq!(ev.sub("${!Literal}/${AWS::IoT::Certificate::CommonName}", &empty).unwrap(), "${Literal}/D1");
    assert_eq!(ev.sub("${Nowhere}", &empty).unwrap_err().code, "aws-template-invalid");
    assert_eq!(ev.sub("${open", &empty).unwrap_err().code, "aws-template-invalid");
}
