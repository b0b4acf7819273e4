"""The patterns manifest strings must match, and the words an error uses for each (so that a
refused value says what was expected, not a regular expression)."""

from __future__ import annotations

from reconciler.model.quantity import PERCENT_PATTERN, QUANTITY_PATTERN

# Patterns double as JSON Schema patterns; PATTERN_HELP turns them into sentences for errors.
NAME_PATTERN = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
HOSTNAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MAC_PATTERN = r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][A-Za-z0-9._-]{0,61})?[A-Za-z0-9])?$"
USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
PACKAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9+._:-]{0,127}$"
OS_NAME_PATTERN = r"^[a-z][a-z0-9._-]{0,31}$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
URL_PATTERN = r"^(https?|file)://[^\s]{1,2000}$"
# What the model itself matches: the same URL with its length checked apart (_url_length).
# pydantic's regex engine builds {1,2000} of a Unicode class as 2,000 copies of it, which
# took 18 ms of every start; the JSON Schema keeps URL_PATTERN, and both judge alike.
URL_SHAPE = r"^(https?|file)://[^\s]+$"
URL_REST_MAX = 2000
SUITE_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
COMPONENT_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
DURATION_PATTERN = r"^[1-9][0-9]{0,5}(h|d|w)$"
CPU_MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
IFACE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$"
SSH_KEY_PATTERN = (
    r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) "
    r"[A-Za-z0-9+/=]+( [^\n]*)?$"
)

PATTERN_HELP: dict[str, str] = {
    NAME_PATTERN: "a DNS label: 1-63 lowercase letters, digits and '-', starting with a letter "
    "and not ending with '-'",
    HOSTNAME_PATTERN: "a hostname: dot-separated DNS labels of lowercase letters, digits and '-'",
    UUID_PATTERN: "a UUID such as 'a9e1c0de-5b5e-4c3a-9a51-0123456789ab'",
    MAC_PATTERN: "a MAC address such as '52:54:00:12:34:56'",
    LABEL_KEY_PATTERN: "a label key: [prefix/]name of letters, digits, '-', '_' and '.'",
    LABEL_VALUE_PATTERN: "a label value: at most 63 letters, digits, '-', '_' and '.'",
    USER_PATTERN: "a user name: lowercase letters, digits, '_' and '-', at most 32 characters",
    ENV_PATTERN: "an environment variable name such as 'VM_ROOT_PASSWORD'",
    SHA256_PATTERN: "a sha256 digest: 64 lowercase hex digits",
    PACKAGE_PATTERN: "a package name",
    OS_NAME_PATTERN: "an OS name such as 'debian' or 'centos'",
    VERSION_PATTERN: "a version such as '12' or '9.3' (quote it in YAML)",
    URL_PATTERN: "an http(s):// or file:// URL",
    URL_SHAPE: "an http(s):// or file:// URL",
    SUITE_PATTERN: "a suite (release code name) such as 'bookworm' or 'jammy'",
    COMPONENT_PATTERN: "an archive component such as 'main' or 'universe'",
    DURATION_PATTERN: "a duration in hours, days or weeks such as '12h', '7d' or '2w'",
    CPU_MODEL_PATTERN: "a CPU model name such as 'qemu64' or 'Haswell-noTSX'",
    IFACE_PATTERN: "a host interface name, at most 15 characters",
    SSH_KEY_PATTERN: "an SSH public key line such as 'ssh-ed25519 AAAA... comment'",
    QUANTITY_PATTERN: "a quantity such as '512Mi' or '4Gi'",
    PERCENT_PATTERN: "a percentage between '0%' and '100%'",
}
