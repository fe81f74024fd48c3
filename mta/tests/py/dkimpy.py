"""dkimpy (Debian's python3-dkim, run with /usr/bin/python3), the
independent DKIM implementation mtad's signatures and verification are
checked against (mta/tests/sender_auth.rs):

    dkimpy.py keys DIR                 an ed25519 key (DIR/ed.key, raw seed in base64) and
                                       its public half; prints the key record's p=
    dkimpy.py sign ALG KEY DOMAIN SELECTOR HEADER/BODY [LENGTH] < message > signed
                                       ALG rsa-sha256 or ed25519-sha256; canonicalization
                                       relaxed/simple/...; LENGTH: sign l= (the body's length)
    dkimpy.py verify RECORDS.json < message     exit 0 when every signature verifies
    dkimpy.py bench RSA_KEY ED_KEY RECORDS.json COUNT < message
                                       µs per message: signing with each key, verifying
                                       both (mta/benches/sender_auth.rs, the peer's row)
"""

import base64
import json
import sys
import time

import dkim
import nacl.signing

step = sys.argv[1]
if step == "keys":
    key = nacl.signing.SigningKey.generate()
    with open(f"{sys.argv[2]}/ed.key", "wb") as f:
        f.write(base64.b64encode(key.encode()))
    print(base64.b64encode(key.verify_key.encode()).decode())
elif step == "sign":
    alg, keyfile, domain, selector, canon = sys.argv[2:7]
    length = len(sys.argv) > 7
    message = sys.stdin.buffer.read()
    header, body = canon.split("/")
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        open(keyfile, "rb").read(),
        canonicalize=(header.encode(), body.encode()),
        signature_algorithm=alg.encode(),
        include_headers=[b"from", b"to", b"subject", b"message-id"],
        length=length,
    )
    sys.stdout.buffer.write(signature + message)
elif step == "verify":
    records = json.load(open(sys.argv[2]))
    message = sys.stdin.buffer.read()
    d = dkim.DKIM(message)
    count = message.count(b"\nDKIM-Signature:") + message.startswith(b"DKIM-Signature:")
    def verified(i):
        try:
            return d.verify(idx=i, dnsfunc=lambda name, timeout=5: records.get(name.decode().rstrip("."), "").encode())
        except dkim.DKIMException as e:  # a broken signature: no
            print(f"signature {i}: {e}", file=sys.stderr)
            return False

    results = [verified(i) for i in range(count)]
    print(json.dumps({"signatures": count, "verified": results}))
    sys.exit(0 if count and all(results) else 1)
elif step == "bench":
    rsa_key, ed_key, records_file, count = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    records = json.load(open(records_file))
    message = sys.stdin.buffer.read()
    keys = {"rsa": open(rsa_key, "rb").read(), "ed": open(ed_key, "rb").read()}
    algs = {"rsa": b"rsa-sha256", "ed": b"ed25519-sha256"}
    out = {}
    for name in ["ed", "rsa"]:
        start = time.perf_counter()
        for _ in range(count):
            signature = dkim.sign(message, name.encode(), b"example.org", keys[name],
                                  canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=algs[name],
                                  include_headers=[b"from", b"to", b"subject", b"message-id", b"date"])
        out["sign_" + name] = (time.perf_counter() - start) * 1e6 / count
        message = signature + message
    dnsfunc = lambda name, timeout=5: records.get(name.decode().rstrip("."), "").encode()
    start = time.perf_counter()
    for _ in range(count):
        d = dkim.DKIM(message)
        assert d.verify(idx=0, dnsfunc=dnsfunc) and d.verify(idx=1, dnsfunc=dnsfunc)
    out["verify_both"] = (time.perf_counter() - start) * 1e6 / count
    print(json.dumps(out))
