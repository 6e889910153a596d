"""Planted credentials: fake but realistic, generated from a seed, each where users keep them
(code, config files, prose, chat). No credential is written in this repository: every value is
drawn at import time in its provider's published format (prefix, alphabet, length).

``PLANTED`` is the recall corpus of ``tests/data/test_secrets.py`` and ``bench/bench_secrets.py``;
``CLEAN`` lists code that holds no credential and must come out unchanged.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = UPPER + LOWER + DIGITS
URLSAFE = ALNUM + "-_"
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"

_rng = random.Random(20240610)


def pick(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def password(n: int = 14, symbols: str = "!#%*^_.-") -> str:
    """A human-made password: a letter first, then letters, digits and symbols, with a digit."""
    return pick(UPPER + LOWER, 1) + pick(ALNUM + symbols, n - 2) + pick(DIGITS, 1)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt() -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": pick(DIGITS, 10), "name": "Ana Lopez", "iat": 1718000000 + _rng.randrange(1e6)}
    return f"{header}.{b64url(json.dumps(claims).encode())}.{pick(URLSAFE, 43)}"


def key_body(first: str, lines: int = 12, sep: str = "\n") -> str:
    """A PEM body: base64 lines of 64 characters after the format's usual opening."""
    text = first + pick(B64, 64 * lines - len(first) + 17)
    return sep.join(text[i : i + 64] for i in range(0, len(text), 64))


@dataclass(frozen=True)
class Planted:
    """``template`` holds ``{secret}`` where the credential sits in a file named ``filename``
    (empty: a chat message)."""

    kind: str
    filename: str
    template: str
    secret: str

    @property
    def text(self) -> str:
        return self.template.replace("{secret}", self.secret)

    def redacted(self, placeholder: str) -> str:
        return self.template.replace("{secret}", placeholder)


def _planted() -> list[Planted]:
    pem = "-----BEGIN {0}-----\n{{secret}}\n-----END {0}-----\n"
    cases = [
        # provider tokens
        (
            "aws access key id",
            "settings.py",
            'AWS_ACCESS_KEY_ID = "{secret}"\n',
            "AKIA" + pick(UPPER + "234567", 16),
        ),
        (
            "aws secret access key",
            "credentials",
            "[default]\nregion = eu-west-1\naws_secret_access_key = {secret}\n",
            pick(B64, 40),
        ),
        (
            "github token",
            "deploy.sh",
            "#!/bin/sh\nexport GITHUB_TOKEN={secret}\ngit push\n",
            "ghp_" + pick(ALNUM, 36),
        ),
        (
            "github fine-grained token",
            "README.md",
            "Set `GH_TOKEN` to {secret} before running the script.\n",
            "github_pat_" + pick(ALNUM, 22) + "_" + pick(ALNUM, 59),
        ),
        (
            "gitlab token",
            ".gitlab-ci.yml",
            "variables:\n  GITLAB_TOKEN: {secret}\n",
            "glpat-" + pick(URLSAFE, 20),
        ),
        (
            "slack bot token",
            "bot.js",
            'const slack = new WebClient("{secret}");\n',
            f"xoxb-{pick(DIGITS, 12)}-{pick(DIGITS, 13)}-{pick(ALNUM, 24)}",
        ),
        (
            "slack webhook",
            "notify.py",
            'WEBHOOK = "{secret}"\n',
            f"https://hooks.slack.com/services/T{pick(UPPER + DIGITS, 8)}/B{pick(UPPER + DIGITS, 10)}/{pick(ALNUM, 24)}",
        ),
        (
            "stripe live key",
            "billing.rb",
            "Stripe.api_key = '{secret}'\n",
            "sk_live_51" + pick(ALNUM, 97),
        ),
        (
            "stripe test key",
            "checkout.ts",
            'const stripe = new Stripe("{secret}");\n',
            "sk_test_51" + pick(ALNUM, 97),
        ),
        (
            "stripe webhook secret",
            "webhooks.py",
            'endpoint_secret = "{secret}"\n',
            "whsec_" + pick(ALNUM, 32),
        ),
        (
            "google api key",
            "index.html",
            '<script src="https://maps.googleapis.com/maps/api/js?key={secret}"></script>\n',
            "AIza" + pick(URLSAFE, 35),
        ),
        (
            "google oauth client secret",
            "oauth.json",
            '{"web": {"client_id": "1234.apps.googleusercontent.com", "client_secret": "{secret}"}}\n',
            "GOCSPX-" + pick(URLSAFE, 28),
        ),
        (
            "openai key",
            ".env",
            "OPENAI_API_KEY={secret}\n",
            "sk-proj-" + pick(URLSAFE, 74) + "T3BlbkFJ" + pick(URLSAFE, 74),
        ),
        (
            "anthropic key",
            "agent.py",
            'client = anthropic.Anthropic(api_key="{secret}")\n',
            "sk-ant-api03-" + pick(URLSAFE, 93) + "AA",
        ),
        (
            "hugging face token",
            "",
            "I ran `huggingface-cli login --token {secret}` and the upload works now.",
            "hf_" + pick(UPPER + LOWER, 34),
        ),
        (
            "npm token",
            ".npmrc",
            "//registry.npmjs.org/:_authToken={secret}\n",
            "npm_" + pick(ALNUM, 36),
        ),
        (
            "npm token in a workflow",
            "release.yml",
            "    env:\n      NODE_AUTH_TOKEN: {secret}\n",
            "npm_" + pick(ALNUM, 36),
        ),
        (
            "pypi token",
            ".pypirc",
            "[pypi]\nusername = __token__\npassword = {secret}\n",
            "pypi-AgEIcHlwaS5vcmc" + pick(URLSAFE, 140),
        ),
        (
            "sendgrid key",
            "mailer.go",
            'client := sendgrid.NewSendClient("{secret}")\n',
            f"SG.{pick(URLSAFE, 22)}.{pick(URLSAFE, 43)}",
        ),
        ("twilio auth token", "sms.py", 'TWILIO_AUTH_TOKEN = "{secret}"\n', pick(HEX, 32)),
        ("twilio api key", "twilio.json", '{"twilio_api_key": "{secret}"}\n', "SK" + pick(HEX, 32)),
        ("mailchimp key", "newsletter.py", 'MAILCHIMP = "{secret}"\n', pick(HEX, 32) + "-us12"),
        (
            "mailgun key",
            "",
            "the mailgun key is {secret}, it goes in the CI settings",
            "key-" + pick(HEX, 32),
        ),
        (
            "azure storage key",
            "local.settings.json",
            '{"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={secret};EndpointSuffix=core.windows.net"}\n',
            pick(B64, 86) + "==",
        ),
        (
            "azure client secret",
            "appsettings.json",
            '{"AzureAd": {"ClientSecret": "{secret}"}}\n',
            pick(ALNUM, 3) + "8Q~" + pick(ALNUM + "_.-", 31),
        ),
        (
            "discord bot token",
            "bot.py",
            'client.run("{secret}")\n',
            "M" + pick(ALNUM, 23) + "." + pick(URLSAFE, 6) + "." + pick(URLSAFE, 27),
        ),
        (
            "telegram bot token",
            "tg.py",
            'updater = Updater("{secret}")\n',
            pick(DIGITS, 10) + ":" + pick(URLSAFE, 35),
        ),
        (
            "digitalocean token",
            "do.tf",
            'provider "digitalocean" {\n  token = "{secret}"\n}\n',
            "dop_v1_" + pick(HEX, 64),
        ),
        (
            "shopify token",
            "shop.rb",
            "ShopifyAPI::Context.setup(api_key: KEY, access_token: '{secret}')\n",
            "shpat_" + pick(HEX, 32),
        ),
        (
            "vault token",
            "vault.sh",
            "VAULT_ADDR=https://vault.internal vault login {secret}\n",
            "hvs." + pick(URLSAFE, 90),
        ),
        (
            "databricks token",
            "job.py",
            'w = WorkspaceClient(host=HOST, token="{secret}")\n',
            "dapi" + pick(HEX, 32),
        ),
        (
            "age secret key",
            "keys.txt",
            "# created: 2024-06-10\n{secret}\n",
            "AGE-SECRET-KEY-1" + pick(UPPER + DIGITS, 58),
        ),
        (
            "square oauth secret",
            "square.py",
            'SQUARE_SECRET = "{secret}"\n',
            "sq0csp-" + pick(URLSAFE, 43),
        ),
        (
            "linear key",
            "linear.ts",
            'const linear = new LinearClient({ apiKey: "{secret}" });\n',
            "lin_api_" + pick(ALNUM, 40),
        ),
        (
            "postman key",
            "postman.sh",
            "newman run coll.json --postman-api-key {secret}\n",
            f"PMAK-{pick(HEX, 24)}-{pick(HEX, 34)}",
        ),
        (
            "grafana token",
            "grafana.ini",
            "[auth]\napi_token = {secret}\n",
            f"glsa_{pick(ALNUM, 32)}_{pick(HEX, 8)}",
        ),
        (
            "jwt",
            "requests.http",
            "GET https://api.internal/v1/me\nAuthorization: Bearer {secret}\n",
            jwt(),
        ),
        # private keys
        (
            "rsa private key",
            "deploy_key.pem",
            pem.format("RSA PRIVATE KEY"),
            key_body("MIIEpAIBAAKCAQEA", 25),
        ),
        (
            "openssh private key",
            "id_ed25519",
            pem.format("OPENSSH PRIVATE KEY"),
            key_body("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", 6),
        ),
        (
            "ec private key in go",
            "server_test.go",
            "const testKey = `-----BEGIN EC PRIVATE KEY-----\n{secret}\n-----END EC PRIVATE KEY-----`\n",
            key_body("MHcCAQEEI", 3),
        ),
        (
            "encrypted pkcs8 key",
            "key.pem",
            pem.format("ENCRYPTED PRIVATE KEY"),
            key_body("MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQww", 20),
        ),
        (
            "pgp private key",
            "secring.asc",
            pem.format("PGP PRIVATE KEY BLOCK"),
            key_body("lQOYBGZm", 20) + "\n=" + pick(B64, 4),
        ),
        (
            "private key in json",
            "service-account.json",
            '{\n  "type": "service_account",\n  "private_key": "-----BEGIN PRIVATE KEY-----\\n{secret}\\n-----END PRIVATE KEY-----\\n",\n  "client_email": "ci@proj.iam.gserviceaccount.com"\n}\n',
            key_body("MIIEvgIBADANBgkqhkiG9w0BAQEFAASC", 25, sep="\\n"),
        ),
        (
            "private key in chat",
            "",
            "Here is the key you asked for:\n-----BEGIN RSA PRIVATE KEY-----\n{secret}\n-----END RSA PRIVATE KEY-----\nthanks!",
            key_body("MIIEowIBAAKCAQEA", 25),
        ),
        (
            "truncated private key",
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\n{secret}",
            key_body("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", 9)[:-20],
        ),
        (
            "putty private key",
            "id.ppk",
            "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nComment: rsa-key\nPublic-Lines: 1\nAAAAB3NzaC1yc2EAAAABJQAAAIEA\nPrivate-Lines: 2\n{secret}\n",
            f"{pick(B64, 64)}\n{pick(B64, 40)}\nPrivate-MAC: {pick(HEX, 40)}",
        ),
        # connection strings
        (
            "postgres url",
            "docker-compose.yml",
            "    environment:\n      DATABASE_URL: postgres://app:{secret}@db.internal:5432/app\n",
            password(18, "_.-~"),
        ),
        (
            "mongodb+srv url",
            "db.js",
            'mongoose.connect("mongodb+srv://admin:{secret}@cluster0.x7k2p.mongodb.net/prod");\n',
            password(16, "_.-~"),
        ),
        (
            "redis url",
            "settings.py",
            'CACHE_URL = "redis://:{secret}@cache.internal:6379/0"\n',
            password(20, "_.-~"),
        ),
        (
            "amqp url",
            "celery.py",
            'broker_url = "amqp://worker:{secret}@rabbit:5672//"\n',
            password(16, "_.-~"),
        ),
        (
            "sql server connection string",
            "Program.cs",
            'var cs = "Server=sql01;Database=shop;User Id=sa;Password={secret};";\n',
            password(14, "!#%*^_.-"),
        ),
        (
            "password in a url query",
            "export.sh",
            'curl "https://api.internal/v1/export?user=bot&password={secret}"\n',
            password(14, "_.-~"),
        ),
        (
            "api key in a url query",
            "weather.py",
            'requests.get(f"https://api.weather.io/v2?city=Paris&api_key={secret}")\n',
            pick(ALNUM, 32),
        ),
        # passwords and keys in code
        (
            "password default argument",
            "auth.py",
            'def login(user, password: str = "{secret}"):\n    return check(user, password)\n',
            password(),
        ),
        (
            "password keyword argument",
            "db.py",
            'conn = psycopg2.connect(host="db", user="app", password="{secret}")\n',
            password(),
        ),
        (
            "password in java",
            "Db.java",
            'private static final String DB_PASSWORD = "{secret}";\n',
            password(),
        ),
        ("password in go", "main.go", 'password := "{secret}"\n', password()),
        (
            "password in a ruby hash",
            "database.rb",
            'config = { adapter: "postgresql", password: "{secret}" }\n',
            password(),
        ),
        (
            "password in php",
            "config.php",
            "<?php return ['db' => ['password' => '{secret}']];\n",
            password(),
        ),
        ("password in swift", "Login.swift", 'let password = "{secret}"\n', password()),
        (
            "password in json inside a string",
            "test_login.py",
            'body = "{\\"username\\": \\"bob\\", \\"password\\": \\"{secret}\\"}"\n',
            password(),
        ),
        ("api key in javascript", "client.js", 'const apiKey = "{secret}";\n', pick(ALNUM, 32)),
        ("api key in kotlin", "Api.kt", 'val apiKey: String = "{secret}"\n', pick(ALNUM, 32)),
        ("token in rust", "main.rs", 'let token = "{secret}";\n', pick(ALNUM, 40)),
        (
            "django secret key",
            "settings.py",
            'SECRET_KEY = "{secret}"\n',
            "django-insecure-" + pick(LOWER + DIGITS + "!@#$%^&*(-_=+)", 50),
        ),
        (
            "session secret in express",
            "app.js",
            'app.use(session({ secret: "{secret}", resave: false }));\n',
            pick(ALNUM, 24),
        ),
        ("signing key", "jwt_config.py", "signing_key = '{secret}'\n", pick(B64, 44)),
        (
            "basic auth header",
            "test_api.py",
            'headers = {"Authorization": "Basic {secret}"}\n',
            base64.b64encode(f"svc:{password()}".encode()).decode(),
        ),
        (
            "bearer token in curl",
            "README.md",
            '```sh\ncurl -H "Authorization: Bearer {secret}" https://api.internal/v1/me\n```\n',
            pick(URLSAFE, 40),
        ),
        # passwords and keys in config files
        ("env password", ".env", "DB_HOST=db\nDB_PASSWORD={secret}\n", password()),
        (
            "yaml password",
            "config.yaml",
            "database:\n  user: app\n  password: {secret}\n",
            password(),
        ),
        (
            "json password",
            "appsettings.json",
            '{\n  "Smtp": {\n    "Password": "{secret}"\n  }\n}\n',
            password(),
        ),
        ("ini password", "app.ini", "[mail]\nsmtp_password = {secret}\n", password()),
        ("toml api key", "config.toml", '[service]\napi_key = "{secret}"\n', pick(ALNUM, 32)),
        (
            "yaml client secret",
            "oauth.yaml",
            "client_id: reports-app\nclient_secret: {secret}\n",
            pick(ALNUM, 40),
        ),
        ("yaml token", "ci.yml", "deploy:\n  deploy_token: {secret}\n", pick(ALNUM, 40)),
        (
            "dockerfile password",
            "Dockerfile",
            "FROM postgres:16\nENV POSTGRES_PASSWORD={secret}\n",
            password(),
        ),
        (
            "kubernetes secret",
            "secret.yaml",
            "apiVersion: v1\nkind: Secret\ndata:\n  password: {secret}\n",
            base64.b64encode(password().encode()).decode(),
        ),
        (
            "terraform password",
            "main.tf",
            'resource "aws_db_instance" "db" {\n  password = "{secret}"\n}\n',
            password(),
        ),
        # diffs (a git history source: secrets removed later are still in the history)
        (
            "private key removed in a diff",
            "deploy/key.pem",
            "@@ -1,5 +0,0 @@\n------BEGIN RSA PRIVATE KEY-----\n{secret}-----END RSA PRIVATE KEY-----\n",
            "\n".join("-" + line for line in key_body("MIIEpAIBAAKCAQEA", 3).split("\n")) + "\n-",
        ),
        (
            "password added in a diff",
            "config/.env",
            "@@ -1,2 +1,3 @@\n DB_HOST=db\n+DB_PASSWORD={secret}\n DB_PORT=5432\n",
            password(),
        ),
        # prose
        (
            "password in prose",
            "",
            "The staging box is up. Login: admin / password: {secret} (rotate it after the demo)",
            password(),
        ),
        ("api key in markdown", "NOTES.md", "- staging api_key: {secret}\n", pick(ALNUM, 32)),
    ]
    return [Planted(*case) for case in cases]


PLANTED = _planted()

# Code that holds no credential: identifiers, names, digests, test vectors, placeholders.
# (class of false positive, file name, text)
CLEAN = [
    (
        "token type string",
        "_header_value_parser.py",
        "class BareQuotedString(QuotedString):\n    token_type = 'bare-quoted-string'\n",
    ),
    (
        "token names in a lexer",
        "lexer.py",
        'TOKEN = "NAME"\ntokens = tokenize(src)\nNL_TOKEN = "nl"\n',
    ),
    (
        "enum of credential names",
        "kinds.py",
        'class Field(Enum):\n    PASSWORD = "password"\n    API_KEY = "api_key"\n    SECRET_KEY = "SECRET_KEY"\n    ACCESS_TOKEN = "access_token"\n',
    ),
    (
        "name of a password field",
        "forms.py",
        'password_field = "password"\nPASSWORD_INPUT = "passwordInput"\napi_key_header = "X-API-Key"\n',
    ),
    ("uuid", "ids.py", 'session_token = "123e4567-e89b-12d3-a456-426614174000"\n'),
    (
        "sha256 digest",
        "release.py",
        'SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"\n',
    ),
    (
        "pip hash",
        "requirements.txt",
        "requests==2.32.3 \\\n    --hash=sha256:70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6\n",
    ),
    (
        "npm integrity",
        "package-lock.json",
        '"integrity": "sha512-Z+iY1sc0Lmc5Sq9DEyqqq2z4+ST7y9nYu7fVxzhJFBUAE6lTYxF/T9sNHB3bVIG6DxBTmUZcs7BCjWK5kOxrJg=="\n',
    ),
    (
        "checksum key",
        "versions.json",
        '{"checksum_key": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}\n',
    ),
    (
        "digest test vector",
        "test_hashlib.py",
        "self.check('md5', b'abc', '900150983cd24fb0d6963f7d28e17f72')\nkey = b'\\x0b' * 20\n",
    ),
    (
        "hmac test vector",
        "test_hmac.py",
        'self.assertEqual(h.hexdigest().upper(), "9294727A3638BB1C13F48EF8158BFC9D")\n',
    ),
    (
        "password from a call",
        "db.py",
        'password = get_password()\npassword = os.environ["DB_PASSWORD"]\nconn = connect(password=password)\n',
    ),
    (
        "templated password",
        "config.yaml",
        'password: "{{ vault_db_password }}"\napi_key: ${API_KEY}\ntoken: <your-token-here>\n',
    ),
    (
        "empty and placeholder passwords",
        ".env.example",
        "DB_PASSWORD=\nAPI_KEY=changeme\nSECRET_KEY=your-secret-key\nTOKEN=xxxxxxxx\n",
    ),
    (
        "kubernetes secret reference",
        "deployment.yaml",
        "        - secretRef:\n            name: db-credentials\n          secretName: tls-cert\n          passwordFile: /run/secrets/db\n",
    ),
    ("boolean option", "sysconfig.py", "'MODULE_PWD_STATE': 'yes',\n"),
    (
        # Alamofire's Documentation/Usage.md: a README's code passes variables named password.
        "arguments named password in a readme",
        "Usage.md",
        "```swift\nAF.request(url).authenticate(username: user, password: password)\n"
        "let credential = URLCredential(user: user, password: password, persistence: .forSession)\n"
        "let headers: HTTPHeaders = [.authorization(username: user, password: password)]\n"
        "db.connect(password=db_password)\nlogin(password=cfg.password, retries=3)\n```\n",
    ),
    # Seen in site-packages (torchao, oci, ray, huggingface_hub, playwright, botocore, regex,
    # Pillow, gradio): constants, type maps, key-file paths, help text, example keys, blobs.
    ("constant named after its value", "quant.py", 'INT8_ASYM_PER_TOKEN = "int8_asym_per_token"\n'),
    (
        "type names in a swagger map",
        "connection_from_bip.py",
        "self.swagger_types = {\n    'password_secret': 'SensitiveAttribute',\n"
        "    'wallet_secret': 'SensitiveAttribute'\n}\n",
    ),
    (
        "paths to key files",
        "defaults.yaml",
        "#    ssh_private_key: /path/to/your/key.pem\nssh_private_key: ~/ray-bootstrap-key.pem\n",
    ),
    ("part of a concatenation", "signer.py", 'self.api_key = "resource/v2.1/" + resource_id\n'),
    ("a domain and a path", "k8s_utils.py", "CLUSTER_NAME_KEY = 'k8s.io/cluster/name'\n"),
    (
        "constants named after their value",
        "configuration_variables.py",
        'DEFAULT_AUTHENTICATION_PLUGIN_SHA256_PASSWORD = "sha256_password"\n'
        'INT8_PER_TOKEN = "int8_per_token"\nS3FileSystem(session_token="token")\n',
    ),
    (
        "identifiers under key names",
        "models.py",
        'CONTENT_SHA256_header_key = "opc-multipart-sha256"\n"result_key": "Ipv6CidrAssociations"\n'
        '"encryption_key_sha256": {"key": "encryptionKeySha256", "type": "str"},\n'
        'key = "actions_sampled_t0_to_H_BxT"\n',
    ),
    ("a public key token", "manifest.py", 'publicKeyToken="1fc8b3b9a1e18e3b"\n'),
    (
        # Alamofire's Documentation/Usage.md: "Username:Password" in base64
        "basic authorization of placeholders",
        "Usage.md",
        'let headers: HTTPHeaders = [\n    "Authorization": "Basic VXNlcm5hbWU6UGFzc3dvcmQ=",\n]\n',
    ),
    (
        "the word password in other languages",
        "pl.js",
        'const login = {"username":"Nazwa użytkownika","password":"Hasło"};\n'
        'const login = {"username":"usuario","password":"contraseña"};\n'
        'const login = {"username":"Användarnamn","password":"Lösenord"};\n',
    ),
    (
        "help text",
        "cli.py",
        'help="Set secret environment variables. E.g. --secrets SECRET=value"\n',
    ),
    ("type description", "_protocol.py", '"password": "string?",\n"token": "str[]",\n'),
    (
        "aws's documented example keys",
        "examples-1.json",
        '"AccessKeyId": "AKIAIOSFODNN7EXAMPLE",\n'
        '"UserId": "AKIAI44QH8DHBEXAMPLE:my-role-session-name"\n',
    ),
    (
        "dna with a key prefix inside",
        "test_regex.py",
        "'AAACCATCTCTACCGGTTCGCTTTCACTGGATATCGCGCTTGGGGCAGGTGGTCTGCCGATGGGCCG'\n",
    ),
    (
        "key prefixes inside base64",
        "ImageFont.py",
        'FONT = b"AAEAAAAPAIAAAwBwRkZUTYwDlUAAADFoAAAAHEdERUYAqADnAAAo8AAAACRHUE9ThhmITwAAKfgAA"\n'
        '"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3FlHqj2eqCdrGHuA6dRjfZXQ4HX5lXEIRHaNbxEwE5Te7"\n',
    ),
    (
        # sinatra's rack-protection: a comment's example secret is a word and filler.
        "placeholder ending in filler",
        "authenticity_token.rb",
        "#     use Rack::Session::Cookie, secret: 'CHANGEME" + "a" * 56 + "'\n",
    ),
    (
        "example url",
        "docs.md",
        "Use `http://user:password@example.com/` or `http://joe:s3cret@proxy.example.com:3128`.\n",
    ),
    (
        "certificate and public key",
        "certs.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB"
        + "A" * 60
        + "\n-----END CERTIFICATE-----\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n",
    ),
    (
        "private key header in code",
        "keys.py",
        'if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):\n    return True\n',
    ),
    (
        "git revision",
        ".pre-commit-config.yaml",
        "  - repo: https://github.com/psf/black\n    rev: 3f786850e387550fdab836ed7e6dc881de23001b\n",
    ),
    (
        "url compared in a test",
        "test_utils.py",
        'assert hidden_url.secret == "https://user:password@example.com"\n'
        'template = "https://{}:x-oauth-basic@github.com/user/{}/archive/master.zip"\n',
    ),
    (
        "example values in documentation",
        "README.md",
        "export OPENAI_API_KEY=sk-...\nGITHUB_TOKEN=ghp_" + "x" * 36 + "\n"
        "aws_access_key_id = AKIAXXXXXXXXXXXXXXXX\nTWILIO_SID=AC" + "x" * 32 + "\n"
        'stripe_key = "sk_test_' + "0" * 24 + '"\napi_key: "sk-xxxxxxxxxxxxxxxxxxxxxxxx"\n',
    ),
    (
        "header in a string",
        "test_httplib.py",
        """text = 'Set-Cookie: Part_Number="Rocket_Launcher_0001"; Version="1"'\n""",
    ),
    (
        "cache and sort keys",
        "cache.py",
        'cache_key = f"user:{user_id}"\nsort_key = "last_modified_at"\nkey = "name"\n',
    ),
    (
        "allowlisted literal",
        "test_auth.py",
        'password = "Xk9#mP2vLq8z"  # pragma: allowlist secret\n',
    ),
]
