"""Bad manifests: each class of mistake gets one clear diagnostic, naming file, line, column,
Kind/name and field, and nothing is returned to apply."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.load.manifests import load_manifests
from reconciler.model.diagnostics import Diagnostic

POOL = """\
apiVersion: reconciler/v1
kind: StoragePool
metadata:
  name: default
spec:
  path: /var/lib/recon/pools/default
"""
NET = """\
apiVersion: reconciler/v1
kind: Network
metadata:
  name: lan
spec:
  mode: nat
"""
TEMPLATE = """\
apiVersion: reconciler/v1
kind: Template
metadata:
  name: deb
spec:
  osName: debian
  version: "12"
  format: tar
  pool: default
  source:
    file:
      path: images/x.tar
      sha256: "0000000000000000000000000000000000000000000000000000000000000000"
"""


def vm(spec: str, name: str = "web") -> str:
    return (
        "apiVersion: reconciler/v1\nkind: VirtualMachine\nmetadata:\n"
        f"  name: {name}\nspec:\n" + textwrap.indent(textwrap.dedent(spec), "  ")
    )


def load(tmp_path: Path, *docs: str, name: str = "m.yaml") -> tuple[list[str], list[Diagnostic]]:
    target = tmp_path / name
    target.write_text("---\n".join(docs))
    result = load_manifests([str(target)], with_schema=True)
    return [str(r.ref) for r in result.resources] if result.ok else [], result.diagnostics


def only(diags: list[Diagnostic]) -> Diagnostic:
    assert len(diags) == 1, [d.render() for d in diags]
    return diags[0]


def test_valid_set_loads_every_resource(tmp_path: Path) -> None:
    refs, diags = load(tmp_path, POOL, NET, vm("cpus: 1\nmemory: 512Mi\n"))
    assert diags == []
    assert refs == ["StoragePool/default", "Network/lan", "VirtualMachine/web"]


def test_unknown_field_names_key_location_and_suggests(tmp_path: Path) -> None:
    _, diags = load(tmp_path, vm("cpus: 1\nmemory: 512Mi\nmemroy: 1Gi\n"))
    d = only(diags)
    assert (d.line, d.column) == (8, 3)
    assert d.field == "spec.memroy"
    assert d.resource == "VirtualMachine/web"
    assert "unknown field 'memroy'" in d.message
    assert d.hint == "did you mean 'memory'?"


def test_string_for_integer_is_not_coerced(tmp_path: Path) -> None:
    d = only(load(tmp_path, vm('cpus: "2"\nmemory: 512Mi\n'))[1])
    assert d.field == "spec.cpus"
    assert d.message == "expected an integer, found a string"
    assert (d.line, d.column) == (6, 9)


def test_integer_for_quantity_is_refused(tmp_path: Path) -> None:
    d = only(load(tmp_path, vm("cpus: 1\nmemory: 512\n"))[1])
    assert d.field == "spec.memory"
    assert "quantity" in d.message


def test_missing_required_field_points_at_parent(tmp_path: Path) -> None:
    d = only(load(tmp_path, vm("memory: 512Mi\n"))[1])
    assert d.field == "spec.cpus"
    assert d.message == "missing required field 'cpus'"
    assert d.line == 6


def test_status_and_uid_are_ignored_as_kubectl_apply_does(tmp_path: Path) -> None:
    """What `recon get -o yaml` reports applies back: status and metadata.uid are not read."""
    doc = vm("cpus: 1\nmemory: 512Mi\n") + "status:\n  phase: x\n  anything: [1, 2]\n"
    doc = doc.replace("  name: web\n", "  name: web\n  uid: not-even-a-uuid\n")
    assert "uid:" in doc
    refs, diags = load(tmp_path, doc)
    assert diags == [] and refs == ["VirtualMachine/web"]


def test_a_list_document_is_its_items_with_their_own_lines(tmp_path: Path) -> None:
    items = [vm("cpus: 1\nmemory: 512Mi\n"), vm("cpus: 0\nmemory: 512Mi\n", name="web-2")]
    body = "".join("  - " + textwrap.indent(item, "    ").lstrip() for item in items)
    refs, diags = load(tmp_path, "apiVersion: v1\nkind: List\nitems:\n" + body)
    d = only(diags)
    assert (d.resource, d.field) == ("VirtualMachine/web-2", "spec.cpus")
    assert d.line == 3 + items[0].count("\n") + 1 + items[1].split("\n").index("  cpus: 0")
    refs, diags = load(
        tmp_path, "apiVersion: v1\nkind: List\nitems:\n" + body.replace("cpus: 0", "cpus: 2")
    )
    assert diags == [] and refs == ["VirtualMachine/web", "VirtualMachine/web-2"]
    assert only(load(tmp_path, "apiVersion: v1\nkind: List\nitems: [1]\n")[1]).field == "items[0]"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a</name>", "XML"),
        ("../x", "path"),
        ("-rf", "flag"),
        ("x" * 300, "long"),
        ("Web", "upper"),
        ("web-", "trailing dash"),
    ],
)
def test_dangerous_names_are_refused(tmp_path: Path, name: str, why: str) -> None:
    quoted = '"' + name + '"'
    d = only(load(tmp_path, vm("cpus: 1\nmemory: 512Mi\n", name=quoted))[1])
    assert d.field == "metadata.name", why
    assert "DNS label" in d.message or "too long" in d.message
    assert (d.line, d.column) == (4, 9)


def test_memory_above_max_memory(tmp_path: Path) -> None:
    d = only(load(tmp_path, vm("cpus: 1\nmemory: 8Gi\nmaxMemory: 4Gi\n"))[1])
    assert d.field == "spec.memory"
    assert d.message == "memory is larger than maxMemory"
    assert d.line == 7


def test_cpus_above_max_cpus(tmp_path: Path) -> None:
    d = only(load(tmp_path, vm("cpus: 8\nmaxCpus: 4\nmemory: 1Gi\n"))[1])
    assert d.field == "spec.cpus"
    assert d.message == "cpus is larger than maxCpus"


@pytest.mark.parametrize("value", ['"101%"', '"-1%"', '"50"', "50", '"5 %"'])
def test_guarantee_outside_0_to_100_percent(tmp_path: Path, value: str) -> None:
    d = only(load(tmp_path, vm(f"cpus: 1\nmemory: 1Gi\nmemoryGuarantee: {value}\n"))[1])
    assert d.field == "spec.memoryGuarantee"
    assert "percentage" in d.message


def test_dangling_references_each_reported(tmp_path: Path) -> None:
    spec = """\
    cpus: 1
    memory: 1Gi
    disks:
      - name: root
        pool: fast
        size: 10Gi
    interfaces:
      - network: wan
    """
    _, diags = load(tmp_path, vm(spec))
    fields = {d.field: d for d in diags}
    assert set(fields) == {"spec.disks[0].pool", "spec.interfaces[0].network"}
    assert "StoragePool 'fast', which no manifest defines" in fields["spec.disks[0].pool"].message
    assert fields["spec.interfaces[0].network"].line == 13


def test_container_template_reference_is_checked(tmp_path: Path) -> None:
    ct = """\
apiVersion: reconciler/v1
kind: Container
metadata:
  name: ct
spec:
  template: debain
  cpus: 1
  memory: 256Mi
  disk: {pool: default, size: 1Gi}
"""
    d = only(load(tmp_path, POOL, TEMPLATE, ct)[1])
    assert d.field == "spec.template"
    assert d.hint == "did you mean 'deb'?"


def test_same_kind_and_name_in_two_files_names_both(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(POOL)
    (tmp_path / "b.yaml").write_text("# other\n" + POOL)
    result = load_manifests([str(tmp_path)])
    d = only(result.diagnostics)
    assert d.file.endswith("b.yaml") and d.line == 5
    assert "duplicate StoragePool/default" in d.message
    assert "a.yaml:1:1" in d.message


def test_plain_secret_value_is_refused_and_never_echoed(tmp_path: Path) -> None:
    spec = """\
    cpus: 1
    memory: 1Gi
    guest:
      users:
        - name: admin
          password: hunter2-Secret
    """
    d = only(load(tmp_path, vm(spec))[1])
    assert d.field == "spec.guest.users[0].password"
    assert "hunter2" not in d.render()
    assert "expected a mapping" in d.message


def test_secret_value_in_any_error_is_never_echoed(tmp_path: Path) -> None:
    spec = """\
    cpus: 1
    memory: 1Gi
    guest:
      users:
        - name: admin
          password:
            valueFrom:
              env: "hunter2 Secret!"
    """
    d = only(load(tmp_path, vm(spec))[1])
    assert "hunter2" not in d.render()


def test_all_errors_of_a_run_are_reported_together(tmp_path: Path) -> None:
    _, diags = load(
        tmp_path,
        vm('cpus: "1"\nmemory: 1Gi\n', name="a"),
        vm("cpus: 1\nmemory: 5\n", name="b"),
        "apiVersion: v2\nkind: Foo\n",
    )
    assert len(diags) == 4
    assert {d.name for d in diags} >= {"a", "b"}


def test_unknown_kind_suggests_the_closest(tmp_path: Path) -> None:
    _, diags = load(tmp_path, "apiVersion: reconciler/v1\nkind: VirtualMachin\nmetadata: {}\n")
    d = only(diags)
    assert d.field == "kind" and d.hint == "did you mean 'VirtualMachine'?"


def test_network_bridge_mode_needs_a_bridge(tmp_path: Path) -> None:
    net = NET.replace("mode: nat", "mode: bridge")
    d = only(load(tmp_path, net)[1])
    assert d.field == "spec.bridge"


def test_dhcp_range_outside_the_network(tmp_path: Path) -> None:
    net = NET + "  ipv4:\n    address: 10.0.0.1/24\n    dhcp: {start: 10.0.1.5, end: 10.0.1.9}\n"
    _, diags = load(tmp_path, net)
    assert [d.field for d in diags] == ["spec.ipv4.dhcp.start", "spec.ipv4.dhcp.end"]
    assert diags[0].message == "outside the network 10.0.0.0/24"


def test_duplicate_mac_across_guests(tmp_path: Path) -> None:
    spec = "cpus: 1\nmemory: 1Gi\ninterfaces:\n  - network: lan\n    mac: '52:54:00:00:00:01'\n"
    _, diags = load(tmp_path, NET, vm(spec, "a"), vm(spec, "b"))
    d = only(diags)
    assert d.name == "b" and "also used by VirtualMachine/a" in d.message


def test_second_host_policy_is_refused(tmp_path: Path) -> None:
    policy = "apiVersion: reconciler/v1\nkind: HostPolicy\nmetadata:\n  name: {}\nspec: {{}}\n"
    d = only(load(tmp_path, policy.format("a"), policy.format("b"))[1])
    assert d.name == "b" and "second HostPolicy" in d.message


def test_vm_disk_template_must_be_a_qcow2_image(tmp_path: Path) -> None:
    spec = (
        "cpus: 1\nmemory: 1Gi\ndisks:\n  - name: root\n    pool: default\n"
        "    size: 1Gi\n    template: deb\n"
    )
    d = only(load(tmp_path, POOL, TEMPLATE, vm(spec))[1])
    assert "needs format 'qcow2'" in d.message


def test_two_pools_on_one_directory_however_spelled(tmp_path: Path) -> None:
    other = POOL.replace("name: default", "name: other").replace("default\n", "default/\n")
    d = only(load(tmp_path, POOL, other)[1])
    assert (d.name, d.field) == ("other", "spec.path")
    assert "pool directory is also used by StoragePool/default" in d.message


def test_two_networks_on_one_bridge(tmp_path: Path) -> None:
    a = NET.replace("mode: nat", "mode: bridge\n  bridge: br0")
    b = a.replace("name: lan", "name: lan2")
    d = only(load(tmp_path, a, b)[1])
    assert (d.name, d.field) == ("lan2", "spec.bridge")
    assert "bridge is also used by Network/lan" in d.message


def test_networks_with_overlapping_subnets(tmp_path: Path) -> None:
    a = NET + "  ipv4:\n    address: 10.0.0.1/16\n"
    b = NET.replace("name: lan", "name: lan2") + "  ipv4:\n    address: 10.0.5.1/24\n"
    c = NET.replace("name: lan", "name: lan3") + "  ipv4:\n    address: 10.1.0.1/24\n"
    d = only(load(tmp_path, a, b, c)[1])
    assert (d.name, d.field) == ("lan2", "spec.ipv4.address")
    assert d.message == "subnet 10.0.5.0/24 overlaps Network/lan's 10.0.0.0/16"


def built(name: str, extra: str = "", fmt: str = "tar") -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: Template\nmetadata:\n  name: {name}\nspec:\n"
        f'  osName: debian\n  version: "12"\n  format: {fmt}\n  pool: default\n'
        f"  source:\n    build: {{}}\n{extra}"
    )


def container(template: str, applications: str) -> str:
    return (
        "apiVersion: reconciler/v1\nkind: Container\nmetadata:\n  name: ct\nspec:\n"
        f"  template: {template}\n  cpus: 1\n  memory: 128Mi\n"
        f"  disk: {{pool: default, size: 1Gi}}\n  applications: {applications}\n"
    )


def test_application_templates_layer_on_a_built_os_template(tmp_path: Path) -> None:
    refs, diags = load(
        tmp_path,
        POOL,
        built("os"),
        built("tools", "  type: application\n  base: os\n  packages: [less]\n"),
        container("os", "[tools]"),
    )
    assert diags == [] and "Container/ct" in refs


@pytest.mark.parametrize(
    ("docs", "field", "message"),
    [
        (
            [built("tools", "  type: application\n")],
            "spec.base",
            "an application template names the OS template it layers on",
        ),
        (
            [built("os", "  base: os\n")],
            "spec.base",
            "only an application template has a base",
        ),
        (
            [built("vmimg", fmt="qcow2"), built("tools", "  type: application\n  base: vmimg\n")],
            "spec.base",
            "Template 'vmimg' is not a built OS template in format 'tar'",
        ),
        (
            [
                built("os"),
                built("other"),
                built("tools", "  type: application\n  base: other\n"),
                container("os", "[tools]"),
            ],
            "spec.applications[0]",
            "Template 'tools' is not an application template of 'os'",
        ),
        (
            [
                built("os"),
                built("tools", "  type: application\n  base: os\n"),
                container("tools", "[]"),
            ],
            "spec.template",
            "Template 'tools' is an application template",
        ),
        (
            [
                built("os"),
                built("tools", "  type: application\n  base: os\n"),
                container("os", "[tools, tools]"),
            ],
            "spec.applications[1]",
            "application 'tools' is listed twice",
        ),
    ],
)
def test_application_template_mistakes(
    tmp_path: Path, docs: list[str], field: str, message: str
) -> None:
    refs, diags = load(tmp_path, POOL, *docs)
    assert refs == []
    assert [(d.field, d.message) for d in diags if d.field == field] == [(field, message)], [
        d.render() for d in diags
    ]
