"""TLS and SASL with real clients against a `rivulet broker` with SASL_SSL and SSL (mutual TLS)
listeners: kafka-python with SCRAM-SHA-512, kcat with SCRAM-SHA-256 and with a client
certificate; a wrong password, a plaintext client on the TLS port and a client certificate
from another CA are refused, and the broker's log names no password.

Certificates are made at test time with the openssl command; users are added with
`rivulet users add --password-stdin` before the broker starts.
"""

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from conftest import Broker, rivulet_bin

ALICE_PW = "alice-" + uuid.uuid4().hex[:12]
BOB_PW = "bob-" + uuid.uuid4().hex[:12]
WRONG_PW = "wrong-" + uuid.uuid4().hex[:12]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path):
    """ca.pem, server.pem/key (SAN 127.0.0.1), carol.pem/key signed by the CA, and eve.pem/key
    signed by another CA."""
    for ca in ("ca", "otherca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                "-days", "2", "-subj", f"/CN={ca}", cwd=d)
    for name, ca, ext in (("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                          ("carol", "ca", "extendedKeyUsage=clientAuth"),
                          ("eve", "otherca", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)
        args = ["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2"]
        # Extensions make X.509 v3 certificates (webpki refuses v1).
        (d / f"{name}.ext").write_text(ext + "\n")
        args += ["-extfile", f"{name}.ext"]
        openssl(*args, cwd=d)


def add_user(data_dir: Path, name, mechanism, password):
    subprocess.run([str(rivulet_bin()), "users", "add", name, "--mechanism", mechanism, "--password-stdin",
                    "--data-dir", str(data_dir)], input=password + "\n", text=True, check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def secure(broker_tmp):
    d = broker_tmp / f"pki-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    make_pki(d)
    data = broker_tmp / f"data-secure-{uuid.uuid4().hex[:8]}"
    add_user(data, "alice", "SCRAM-SHA-512", ALICE_PW)
    add_user(data, "bob", "SCRAM-SHA-256", BOB_PW)
    b = Broker(data, listen_args=("--listeners", "SASL_SSL://127.0.0.1:0,SSL://127.0.0.1:0"), listeners=2,
               extra_args=("--allow-everyone-if-no-acl-found",
                           "--tls-cert", str(d / "server.pem"), "--tls-key", str(d / "server.key"),
                           "--tls-client-ca", str(d / "ca.pem")))
    try:
        yield {"sasl_ssl": b.addrs[0], "ssl": b.addrs[1], "pki": d, "broker": b}
    finally:
        b.stop()
        log = b.log_path.read_text(errors="replace")
        for pw in (ALICE_PW, BOB_PW, WRONG_PW):
            assert pw not in log, "a password is in the broker's log"


def scram(secure, password=ALICE_PW):
    return dict(bootstrap_servers=secure["sasl_ssl"], security_protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice", sasl_plain_password=password,
                ssl_cafile=str(secure["pki"] / "ca.pem"))


def test_kafka_python_scram_sha512_over_sasl_ssl(secure, topic_name):
    p = KafkaProducer(**scram(secure), acks="all")
    for i in range(50):
        p.send(topic_name, f"v{i}".encode())
    p.flush(timeout=30)
    p.close()
    c = KafkaConsumer(topic_name, auto_offset_reset="earliest", consumer_timeout_ms=10000, **scram(secure))
    got = [m.value.decode() for m in c]
    c.close()
    assert got == [f"v{i}" for i in range(50)]


def test_kafka_python_wrong_password_is_refused(secure, topic_name):
    with pytest.raises(KafkaError):
        p = KafkaProducer(**scram(secure, WRONG_PW), max_block_ms=5000, request_timeout_ms=5000)
        p.send(topic_name, b"x").get(timeout=10)
    assert "authentication failed" in secure["broker"].log_tail(200)


def test_plaintext_client_on_the_tls_port_is_refused(secure, topic_name):
    with pytest.raises(KafkaError):
        p = KafkaProducer(bootstrap_servers=secure["sasl_ssl"], max_block_ms=5000, request_timeout_ms=5000)
        p.send(topic_name, b"x").get(timeout=10)
    assert "TLS handshake failed" in secure["broker"].log_tail(200)


def kcat(*args, input_text=None):
    exe = shutil.which("kcat") or shutil.which("kafkacat")
    if exe is None:
        pytest.skip("kcat is not installed")
    return subprocess.run([exe, *args], input=input_text, text=True, capture_output=True, timeout=60)


def test_kcat_scram_sha256_and_mutual_tls(secure, topic_name):
    ca = str(secure["pki"] / "ca.pem")
    sasl = ["-b", secure["sasl_ssl"], "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-256",
            "-X", "sasl.username=bob", "-X", f"sasl.password={BOB_PW}", "-X", f"ssl.ca.location={ca}"]
    out = kcat(*sasl, "-P", "-t", topic_name, input_text="a\nb\nc\n")
    assert out.returncode == 0, out.stderr
    pki = secure["pki"]
    mtls = ["-b", secure["ssl"], "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={ca}",
            "-X", f"ssl.certificate.location={pki / 'carol.pem'}", "-X", f"ssl.key.location={pki / 'carol.key'}"]
    out = kcat(*mtls, "-C", "-t", topic_name, "-o", "beginning", "-e", "-q")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["a", "b", "c"]
    # A certificate from another CA is refused by the handshake.
    eve = ["-b", secure["ssl"], "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={ca}",
           "-X", f"ssl.certificate.location={pki / 'eve.pem'}", "-X", f"ssl.key.location={pki / 'eve.key'}",
           "-m", "5"]
    out = kcat(*eve, "-L")
    assert out.returncode != 0
