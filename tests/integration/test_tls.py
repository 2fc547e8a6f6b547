"""TLS to the source and the target ([source]/[target] ssl_mode, ssl_ca, ssl_cert, ssl_key).

The test makes its own PKI (a CA, a server certificate for 127.0.0.1/localhost, a client
certificate, a second CA, a certificate naming another host) and starts its own MariaDB
source and target with ``require_secure_transport=ON`` (and performance_schema, to read
each connection's ``Ssl_cipher``): every TCP connection to them must be TLS. It shows:
a connection with ``ssl_mode = "disabled"`` is refused with one line saying TLS is
required; ``applier run`` works end to end with verify_identity (and a client
certificate) and with verify_ca, the binlog dump and every worker encrypted; a wrong CA
is one line naming ssl_ca, for MySQLdb and for the dump's PyMySQL; verify_identity
checks the host name where verify_ca does not; ``required`` refuses a server without
TLS; ``applier status`` and ``applier check`` work over TLS; a MySQL 9.7 source and
target are verified against the CA that mysqld made at initialize.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from applier import config
from applier.binlog.position import BinlogPosition
from applier.config import ServerConfig, SourceConfig
from applier.db import connect as connect_module
from applier.db.connect import connect, connect_pymysql
from applier.errors import ConfigError, ConnectError
from applier.harness import sandbox
from applier.ops.check import check
from applier.pipeline.source import DumpSource
from tests.integration.test_cli_errors import assert_clean_error, run_cli
from tests.support import make_config, run_applier
from tests.support import render_toml as render

pytestmark = pytest.mark.integration

ROWS = 40
CIPHERS = """SELECT t.PROCESSLIST_ID, t.PROCESSLIST_COMMAND, s.VARIABLE_VALUE
             FROM performance_schema.threads t JOIN performance_schema.status_by_thread s USING (THREAD_ID)
             WHERE s.VARIABLE_NAME = 'Ssl_cipher' AND t.PROCESSLIST_USER = %s AND t.PROCESSLIST_ID <> CONNECTION_ID()"""


# ---- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed none of the above
    misnamed_cert: Path  # signed by ``ca``, for db.example only
    misnamed_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey | None = None,
           key_path: Path | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None and key_path is not None:
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool = False,
                 names: list[x509.GeneralName] | None = None, usage=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                       critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, other_key = _key(), _key()
    ca = _certificate("mts test CA", ca_key, "mts test CA", ca_key, ca=True)
    other = _certificate("some other CA", other_key, "some other CA", other_key, ca=True)
    server_key, client_key, misnamed_key = _key(), _key(), _key()
    here = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _certificate("localhost", server_key, "mts test CA", ca_key, names=here,
                          usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _certificate("mts client", client_key, "mts test CA", ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    misnamed = _certificate("db.example", misnamed_key, "mts test CA", ca_key, names=[x509.DNSName("db.example")],
                            usage=ExtendedKeyUsageOID.SERVER_AUTH)
    pki = Pki(d / "ca.pem", d / "server-cert.pem", d / "server-key.pem", d / "client-cert.pem",
              d / "client-key.pem", d / "other-ca.pem", d / "misnamed-cert.pem", d / "misnamed-key.pem")
    _write(pki.ca, ca)
    _write(pki.other_ca, other)
    _write(pki.server_cert, server, server_key, pki.server_key)
    _write(pki.client_cert, client, client_key, pki.client_key)
    _write(pki.misnamed_cert, misnamed, misnamed_key, pki.misnamed_key)
    return pki


# ---- servers that require TLS ------------------------------------------------------------------


def _server_tls(pki: Pki, cert: Path, key: Path) -> dict[str, str]:
    return {"ssl_cert": str(cert), "ssl_key": str(key), "ssl_ca": str(pki.ca)}


@pytest.fixture(scope="module")
def tls_pair(mariadb_available, pki: Pki, tmp_path_factory: pytest.TempPathFactory):
    """A started source and target that refuse unencrypted TCP connections."""
    base = tmp_path_factory.mktemp("tls-servers")
    strict = {**_server_tls(pki, pki.server_cert, pki.server_key), "require_secure_transport": "ON",
              "performance_schema": "ON"}
    client = {"ssl": {"ca": str(pki.ca)}}  # the harness's own connections (query, connect)
    source = sandbox.LocalMariadb("tls-source", base / "source", sandbox.free_port(), 1, True,
                                  {**sandbox.source_options(), **strict}, client_options=client)
    target = sandbox.LocalMariadb("tls-target", base / "target", sandbox.free_port(), 2, False,
                                  {**sandbox.target_options(), **strict}, client_options=client)
    source.start()
    try:
        target.start()
    except BaseException:
        source.stop()
        raise
    yield source, target
    target.stop()
    source.stop()


def tls_keys(pki: Pki, mode: str, *, client_cert: bool = False) -> dict[str, str]:
    keys = {"ssl_mode": mode, "ssl_ca": str(pki.ca)}
    if client_cert:
        keys.update(ssl_cert=str(pki.client_cert), ssl_key=str(pki.client_key))
    return keys


class Job:
    """A backlog on the TLS source and the config sections that apply it over TLS."""

    def __init__(self, pair, pki: Pki, db: str, tmp_path: Path, mode: str = "verify_identity",
                 client_cert: bool = True) -> None:
        self.source, self.target = pair
        self.db, self.tmp_path, self.schema = db, tmp_path, f"ckpt_{db}"
        sc, tc = self.source.server_config(), self.target.server_config()
        file, pos = self.source.binlog_position()
        tls = tls_keys(pki, mode, client_cert=client_cert)
        self.sections = {
            "source": {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
                       "start_file": file, "start_pos": pos, "reconnect_attempts": 1,
                       "reconnect_backoff_seconds": 0.1, **tls},
            "target": {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password,
                       "checkpoint_schema": self.schema, **tls},
            "apply": {"databases": [db], "workers": 2},
        }
        self.passwords = (sc.password, tc.password)
        self.source.execute(f"CREATE DATABASE `{db}`")
        self.source.execute(f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
        for i in range(ROWS):
            self.source.execute(f"INSERT INTO `{db}`.t VALUES (%s, 'x')", (i,))
        self.source.execute(f"UPDATE `{db}`.t SET v = 'y' WHERE id % 3 = 0")

    def write(self) -> str:
        path = self.tmp_path / "applier.toml"
        path.write_text(render(self.sections))
        return str(path)

    def config(self) -> config.Config:
        return config.load(self.write(), environ={})

    def target_rows(self) -> int:
        try:
            return int(self.target.query(f"SELECT COUNT(*) FROM `{self.db}`.t")[0][0])
        except Exception:  # not created yet
            return -1

    def assert_same(self) -> None:
        cfg = self.config()
        report = check(cfg.source, cfg.target, databases=(self.db,))
        assert report.ok and report.tables_checked == 1, str(report)

    def assert_untouched(self) -> None:
        rows = self.target.query("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name IN (%s, %s)",
                                 (self.db, self.schema))
        assert rows[0][0] == 0, "something was applied"


def ssl_accepts(server) -> int:
    return int(dict(server.query("SHOW GLOBAL STATUS LIKE 'Ssl_finished_accepts'"))["Ssl_finished_accepts"])


# ---- config ------------------------------------------------------------------------------------


def _config_error(section: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config.from_dict({"target": section}, environ={})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_config_checks_the_tls_keys(pki: Pki, tmp_path: Path):
    def error(**section) -> str:
        return _config_error(section)

    assert "[target] ssl_mode = 'tls'" in error(ssl_mode="tls")
    assert "verify_identity" in error(ssl_mode="tls")
    message = error(ssl_mode="required", ssl_cert=str(pki.client_cert))
    assert message.startswith("[target] ssl_key = ''") and "needs its private key" in message
    assert error(ssl_key=str(pki.client_key)).startswith("[target] ssl_cert = ''")
    assert error(ssl_mode="verify_ca").startswith("[target] ssl_ca = ''")
    assert "does not do" in error(ssl_mode="required", ssl_ca=str(pki.ca))
    missing = tmp_path / "nope.pem"
    message = error(ssl_mode="verify_ca", ssl_ca=str(missing))
    assert f"[target] ssl_ca = '{missing}'" in message and "No such file" in message
    assert "cannot read the file" in error(ssl_mode="verify_ca", ssl_ca=str(tmp_path))  # a directory
    assert "holds no PEM certificate" in error(ssl_mode="verify_ca", ssl_ca=str(pki.client_key))
    message = error(ssl_cert=str(pki.client_cert), ssl_key=str(pki.server_key))  # not its key
    assert message.startswith(f"[target] ssl_key = '{pki.server_key}'") and "cannot be used" in message
    assert "holds no PEM private key" in error(ssl_cert=str(pki.client_cert), ssl_key=str(pki.ca))
    # the environment sets them as any key; REQUIRED is read as the MySQL client writes it
    overrides, origins = config.environment_overrides({"APPLIER_SOURCE_SSL_MODE": "VERIFY_CA",
                                                       "APPLIER_SOURCE_SSL_CA": str(pki.ca)})
    cfg = config.from_dict(overrides, {}, origins)
    assert (cfg.source.ssl_mode, cfg.source.ssl_ca, cfg.target.ssl_mode) == ("verify_ca", str(pki.ca), "preferred")


@pytest.mark.skipif(not connect_module._LIBMARIADB, reason="mysqlclient is not built on libmariadb")
def test_each_mode_as_the_drivers_spell_it(pki: Pki):
    s = ServerConfig(ssl_ca=str(pki.ca), ssl_cert=str(pki.client_cert), ssl_key=str(pki.client_key))
    cert = {"cert": s.ssl_cert, "key": s.ssl_key}
    assert connect_module.mysqldb_tls(s, "disabled") == {"ssl_mode": "DISABLED"}
    assert connect_module.mysqldb_tls(s, "preferred") == {"ssl_mode": "REQUIRED", "ssl": cert}
    assert connect_module.mysqldb_tls(s, "required") == {"ssl_mode": "REQUIRED", "ssl": cert}
    assert connect_module.mysqldb_tls(s, "verify_ca") == {"ssl_mode": "REQUIRED", "ssl": {"ca": s.ssl_ca, **cert}}
    assert connect_module.mysqldb_tls(s, "verify_identity") == {"ssl_mode": "VERIFY_IDENTITY",
                                                                "ssl": {"ca": s.ssl_ca, **cert}}
    assert connect_module.pymysql_tls(s, "disabled") == {"ssl_disabled": True}
    assert connect_module.pymysql_tls(s, "verify_ca") == {
        "ssl_ca": s.ssl_ca, "ssl_verify_cert": True, "ssl_verify_identity": False,
        "ssl_cert": s.ssl_cert, "ssl_key": s.ssl_key}
    assert connect_module.pymysql_tls(s, "verify_identity")["ssl_verify_identity"] is True
    assert connect_module.tls_mode(dataclasses.replace(s, socket="/run/x.sock", ssl_mode="required")) == "disabled"


# ---- refused -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["source", "target"])
def test_a_connection_without_tls_is_refused_with_one_line(tls_pair, pki, dbname, tmp_path, role):
    job = Job(tls_pair, pki, dbname, tmp_path)
    job.sections[role].update(ssl_mode="disabled")
    result = run_cli("run", "--config", job.write(), "--stop-at-end")
    assert_clean_error(result, ConnectError.exit_code, "requires TLS", "require_secure_transport",
                       f"[{role}] ssl_mode", secrets=job.passwords)
    job.assert_untouched()


@pytest.mark.parametrize("role", ["source", "target"])
def test_a_wrong_ca_is_refused_with_one_line(tls_pair, pki, dbname, tmp_path, role):
    job = Job(tls_pair, pki, dbname, tmp_path, mode="verify_ca")
    job.sections[role]["ssl_ca"] = str(pki.other_ca)
    result = run_cli("run", "--config", job.write(), "--stop-at-end")
    line = assert_clean_error(result, ConnectError.exit_code, f"[{role}] ssl_ca = '{pki.other_ca}'",
                              "does not verify", "set [", secrets=job.passwords)
    assert "Traceback" not in line
    job.assert_untouched()


def test_the_dump_connection_checks_the_ca_too(tls_pair, pki):
    """PyMySQL (the binlog dump) refuses a wrong CA with the same line as MySQLdb."""
    source, _ = tls_pair
    sc = source.server_config()
    cfg = SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password,
                       ssl_mode="verify_identity", ssl_ca=str(pki.other_ca))
    file, pos = source.binlog_position()
    for open_ in (lambda: DumpSource(cfg, "mariadb", non_blocking=True).open(BinlogPosition(file, pos)),
                  lambda: connect(cfg, "source")):
        with pytest.raises(ConnectError) as info:
            open_()
        message = str(info.value)
        assert "[source] ssl_ca" in message and "does not verify" in message and sc.password not in message
    good = dataclasses.replace(cfg, ssl_ca=str(pki.ca))
    reader = DumpSource(good, "mariadb", non_blocking=True)
    reader.open(BinlogPosition(file, pos))
    reader.close()


def test_verify_identity_checks_the_host_name(mariadb_available, pki, tmp_path):
    """A certificate signed by the CA but issued for db.example: verify_ca accepts it,
    verify_identity refuses it (both drivers), naming the host."""
    server = sandbox.LocalMariadb("misnamed", tmp_path / "misnamed", sandbox.free_port(), 1, True,
                                  {**sandbox.source_options(), **_server_tls(pki, pki.misnamed_cert, pki.misnamed_key)})
    server.start()
    try:
        sc = server.server_config()
        base = SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password, ssl_ca=str(pki.ca))
        file, pos = server.binlog_position()
        identity = dataclasses.replace(base, ssl_mode="verify_identity")
        for open_ in (lambda: connect(identity, "source"),
                      lambda: DumpSource(identity, "mariadb", non_blocking=True).open(BinlogPosition(file, pos))):
            with pytest.raises(ConnectError) as info:
                open_()
            assert "not issued for host '127.0.0.1'" in str(info.value)
            assert 'ssl_mode = "verify_ca"' in str(info.value)
        ca_only = dataclasses.replace(base, ssl_mode="verify_ca")
        conn = connect(ca_only, "source")
        assert connect_module._cipher(conn)
        conn.close()
        reader = DumpSource(ca_only, "mariadb", non_blocking=True)
        reader.open(BinlogPosition(file, pos))
        reader.close()
    finally:
        server.stop()


def test_required_refuses_a_server_without_tls(source):
    """The session source offers no TLS: required says so; preferred goes on unencrypted."""
    sc = source.server_config()
    required = dataclasses.replace(sc, ssl_mode="required")
    for open_ in (lambda: connect(required, "source"),
                  lambda: connect_pymysql(required, "source", host=sc.host, port=sc.port, user=sc.user,
                                          password=sc.password)):
        with pytest.raises(ConnectError) as info:
            open_()
        message = str(info.value)
        assert "[source] ssl_mode = 'required' needs TLS but the server offers none" in message
        assert sc.password not in message
    preferred = dataclasses.replace(sc, ssl_mode="preferred")
    for conn in (connect(preferred, "source"),
                 connect_pymysql(preferred, "source", host=sc.host, port=sc.port, user=sc.user,
                                 password=sc.password)):
        assert connect_module._cipher(conn) == ""
        conn.close()


def test_a_client_certificate_is_presented(tls_pair, pki):
    """An account that requires the client certificate's subject: both drivers send it."""
    source, _ = tls_pair
    password = "x509-Pw-31"
    conn = source.connect()
    cur = conn.cursor()
    cur.execute("SET SESSION sql_log_bin = 0")
    for host in ("127.0.0.1", "localhost"):  # the server may resolve 127.0.0.1 to localhost
        cur.execute("CREATE OR REPLACE USER 'x509'@%s IDENTIFIED BY %s REQUIRE SUBJECT '/CN=mts client'",
                    (host, password))
        cur.execute("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'x509'@%s", (host,))
    conn.close()
    cfg = SourceConfig(host="127.0.0.1", port=source.port, user="x509", password=password,
                       ssl_mode="verify_identity", ssl_ca=str(pki.ca))
    with_cert = dataclasses.replace(cfg, ssl_cert=str(pki.client_cert), ssl_key=str(pki.client_key))
    file, pos = source.binlog_position()

    def dump(server: SourceConfig) -> DumpSource:
        reader = DumpSource(server, "mariadb", non_blocking=True)
        reader.open(BinlogPosition(file, pos))
        return reader

    for server, ok in ((with_cert, True), (cfg, False)):
        for open_ in (lambda s=server: connect(s, "source"), lambda s=server: dump(s)):
            if ok:
                open_().close()
            else:
                with pytest.raises(ConnectError, match="access denied") as info:
                    open_()
                assert password not in str(info.value)


# ---- applied over TLS --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["verify_identity", "verify_ca"])
def test_run_stop_at_end_status_and_check_over_tls(tls_pair, pki, dbname, tmp_path, mode):
    job = Job(tls_pair, pki, dbname, tmp_path, mode=mode, client_cert=mode == "verify_identity")
    before = ssl_accepts(job.source), ssl_accepts(job.target)
    conf = job.write()
    result = run_cli("run", "--config", conf, "--stop-at-end")
    assert result.returncode == 0, result.stderr
    # preflight, start check and the dump on the source; preflight, lock, serial session and
    # 2 workers on the target: each a TLS handshake (the servers refuse anything else)
    assert ssl_accepts(job.source) >= before[0] + 3
    assert ssl_accepts(job.target) >= before[1] + 4
    assert job.target_rows() == ROWS
    status = run_cli("status", "--config", conf)
    assert status.returncode == 0, status.stderr
    file, pos = job.source.binlog_position()
    assert f"applied position:   {file}:{pos}" in status.stdout
    checked = run_cli("check", "--config", conf)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    for text in (result, status, checked):
        assert not any(p in text.stdout + text.stderr for p in job.passwords)
    job.assert_same()


def test_the_dump_and_every_worker_are_encrypted(tls_pair, pki, dbname, tmp_path, spawn):
    """While `applier run` follows the source: its binlog dump thread on the source and
    each of its connections on the target (workers included) have a TLS cipher."""
    job = Job(tls_pair, pki, dbname, tmp_path)
    app = spawn(Path(job.write()))
    app.workers(2)
    deadline = time.monotonic() + 60
    while job.target_rows() != ROWS:
        assert app.proc.poll() is None, app.describe()
        assert time.monotonic() < deadline, "not caught up within 60 s"
        time.sleep(0.2)
    dump = [row for row in job.source.query(CIPHERS, ("mts",)) if row[1] == "Binlog Dump"]
    assert len(dump) == 1 and dump[0][2], dump
    on_target = job.target.query(CIPHERS, ("mts",))
    assert len(on_target) >= 3, on_target  # 2 workers, the serial session, the checkpoint lock
    assert all(cipher for _, _, cipher in on_target), on_target
    app.signal(signal.SIGTERM, group=False)
    assert app.wait() == 0, app.describe()
    job.assert_same()


# ---- MySQL 9.7: its own certificates -----------------------------------------------------------


def test_mysql_verify_ca_against_the_ca_mysqld_made(mysql_source, mysql_target, dbname):
    """mysqld --initialize writes ca.pem and a server certificate signed by it (named
    for no host): verify_ca with that CA works end to end, verify_identity is refused
    naming the host, and the other server's CA is refused naming ssl_ca."""
    cfg = make_config(mysql_source, mysql_target, dbname, workers=2)
    source_ca, target_ca = str(mysql_source.datadir / "ca.pem"), str(mysql_target.datadir / "ca.pem")
    cfg = dataclasses.replace(
        cfg,
        source=dataclasses.replace(cfg.source, ssl_mode="verify_ca", ssl_ca=source_ca),
        target=dataclasses.replace(cfg.target, ssl_mode="verify_ca", ssl_ca=target_ca),
    )
    mysql_source.execute(f"CREATE DATABASE {dbname}")
    mysql_source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v VARCHAR(20))")
    for i in range(ROWS):
        mysql_source.execute(f"INSERT INTO {dbname}.t VALUES (%s, 'x')", (i,))
    run_applier(cfg)
    report = check(cfg.source, cfg.target, databases=(dbname,))
    assert report.ok and report.tables_checked == 1, str(report)
    for conn in (connect(cfg.source, "source"), connect(cfg.target, "target"),
                 connect_pymysql(cfg.source, "source", host=cfg.source.host, port=cfg.source.port,
                                 user=cfg.source.user, password=cfg.source.password)):
        assert connect_module._cipher(conn)
        conn.close()
    identity = dataclasses.replace(cfg.source, ssl_mode="verify_identity")
    wrong = dataclasses.replace(cfg.source, ssl_ca=target_ca)
    for server, fragment in ((identity, "not issued for host '127.0.0.1'"), (wrong, "does not verify")):
        for open_ in (lambda s=server: connect(s, "source"),
                      lambda s=server: connect_pymysql(s, "source", host=s.host, port=s.port, user=s.user,
                                                       password=s.password)):
            with pytest.raises(ConnectError) as info:
                open_()
            assert fragment in str(info.value) and "[source]" in str(info.value)
