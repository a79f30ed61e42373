"""Who may call: the pure building blocks the request pipeline uses.

    network.py   the client's address behind trusted proxies; IP allow/deny lists
    jwt.py       signed bearer JWTs (OIDC) checked against the issuer's JWKS
    exposure.py  the start-up warning for an open gateway on a non-loopback address

Nothing here imports the others or the server, so each loads only where it is used.
"""
