"""What ``Study.suggest`` returns: a name that carries its claim."""
from __future__ import annotations


class Claim(str):
    """A suggested name (the class's canonical member) that carries its claim.

    It is a ``str``, so it can be passed wherever a name is expected; ``tell`` uses its token to tell
    a current claim from a stale one.
    """

    token: str
    class_id: int
    lease_until: float

    def __new__(cls, name: str, token: str, class_id: int, lease_until: float):
        obj = super().__new__(cls, name)
        obj.token, obj.class_id, obj.lease_until = token, class_id, lease_until
        return obj

    def __reduce__(self):
        # str's own reduction would call ``Claim(name)`` without the claim's fields, so a claim
        # could not travel to a worker process or a Ray task.
        return (Claim, (str(self), self.token, self.class_id, self.lease_until))


__all__ = ["Claim"]
