"""Parsing and schema: errors name the file, the document and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambient_tui.netpol.parse import NotNetworkPolicy, ParseError, parse_file, parse_text
from ambient_tui.netpol.schema import validate
from ambient_tui.netpol.templates import TEMPLATES, build

GOOD = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: a
  namespace: demo
spec:
  podSelector: {}
  ingress:
  - ports:
    - port: 15008
"""


def test_multi_document_keeps_lines():
    text = "# comment\n---\n" + GOOD + "---\n" + GOOD.replace("name: a", "name: b") + "---\n"
    docs = parse_text(text, "f.yaml")
    assert [d.name for d in docs] == ["a", "b"]
    assert [d.document for d in docs] == [1, 2]
    assert docs[0].line == 3 and docs[1].line == 14
    assert docs[1].line_of("spec", "ingress", 0, "ports", 0, "port") == 23
    assert docs[0].file == "f.yaml"


def test_not_yaml_reports_line_and_column():
    with pytest.raises(ParseError) as info:
        parse_text(GOOD + "---\nmetadata: {name: [\n", "bad.yaml")
    err = info.value
    assert (err.file, err.document) == ("bad.yaml", 2)
    assert err.line == 13 and err.column is not None
    assert str(err).startswith("bad.yaml: document 2: line 13")


def test_configmap_in_multi_doc_file_is_skipped_and_counted():
    from ambient_tui.netpol.parse import parse_manifests

    text = GOOD + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
    got = parse_manifests(text, "mixed.yaml")
    assert [d.document for d in got.policies] == [1] and got.skipped == {"ConfigMap": 1}
    assert got.note() == "skipped 1 document(s) of other kinds: 1 ConfigMap"


def test_scalar_document_is_rejected():
    with pytest.raises(NotNetworkPolicy):
        parse_text("just text\n")


def test_kubectl_list_output_is_accepted():
    text = ("apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n"
            "  kind: NetworkPolicy\n  metadata: {name: x}\n  spec: {podSelector: {}}\n")
    docs = parse_text(text)
    assert [d.name for d in docs] == ["x"] and docs[0].line == 4 and docs[0].item == 0


def test_unreadable_and_binary_files(tmp_path):
    with pytest.raises(ParseError, match="cannot read"):
        parse_file(tmp_path / "missing.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ParseError, match="UTF-8"):
        parse_file(binary)


def test_empty_file_has_no_documents():
    assert parse_text("") == [] and parse_text("---\n---\n") == []


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_templates_are_schema_clean(name):
    doc = build(name, namespace="demo", selector={"app": "web"}, port=8080,
                to_namespace="cfg", to_selector={"app": "cfg"})
    assert validate(doc) == []
    assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ambient-tui"


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.update(apiVersion="extensions/v1beta1"), "apiVersion must be"),
    (lambda d: d["spec"].update(ingres=[]), "unknown field 'ingres'"),
    (lambda d: d["spec"]["ingress"][0]["ports"][0].update(port=70000), "outside 1-65535"),
    (lambda d: d["spec"]["ingress"][0]["ports"][0].update(port="<port>"), "placeholder"),
    (lambda d: d["spec"]["ingress"][0]["ports"][0].update(protocol="HTTP"), "protocol must be"),
    (lambda d: d["spec"]["ingress"][0].update(
        **{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}), "cannot be combined"),
    (lambda d: d["spec"]["ingress"][0].update(
        **{"from": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}), "not a valid CIDR"),
    (lambda d: d["spec"].update(podSelector={"matchLabels": {"enabled": True}}), "quote it"),
    (lambda d: d["metadata"].update(name="Bad_Name"), "not a valid DNS subdomain"),
    (lambda d: d["spec"].update(policyTypes=["ingress"]), "Ingress or Egress"),
])
def test_schema_findings(mutate, needle):
    doc = parse_text(GOOD)[0].data
    mutate(doc)
    messages = [i.message for i in validate(doc)]
    assert any(needle in m for m in messages), messages


def test_schema_issue_lines_point_at_the_field():
    from ambient_tui.netpol.lint import lint_text

    text = GOOD.replace("port: 15008", "port: 99999")
    f = [f for f in lint_text(text) if f.rule == "schema"][0]
    assert f.line == 10 and f.severity == "error"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_assets_match_code(name):
    # assets/netpol/templates/*.yaml are the rendered defaults, for reading and for kubectl.
    from pathlib import Path

    from ambient_tui.netpol.templates import render

    asset = Path(__file__).resolve().parents[2] / "assets" / "netpol" / "templates" / f"{name}.yaml"
    assert asset.read_text() == render(name), f"regenerate with: netpol template {name}"


def test_key_lines_from_the_parse_agree_with_composed_lines():
    # parse records the lines of top-level and spec keys from the events; every other line
    # comes from composing the document again. Both must say the same (real files, flow
    # style and comments included).
    from dataclasses import replace

    corpus = Path(__file__).parent / "netpol_corpus"
    checked = 0
    for path in sorted(corpus.rglob("*.yaml")):
        for doc in parse_file(path):
            fresh = replace(doc, keylines={}, _node=None, _root_line=None)
            for key, line in doc.keylines.items():
                assert fresh.line_of(*key) == line, (path.name, key)
                checked += 1
    assert checked > 200
