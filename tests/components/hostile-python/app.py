"""Test fixture: a Python component that misbehaves; see wit/hostile.wit."""

import os
import socket

import wit_world
from componentize_py_types import Err


class WitWorld(wit_world.WitWorld):
    def read_file(self, path: str) -> str:
        try:
            with open(path) as f:
                return f.read()
        except OSError as e:
            raise Err(f"{type(e).__name__}: {e}")

    def environment(self):
        return [f"{k}={v}" for k, v in os.environ.items()]

    def connect(self, host: str, port: int) -> str:
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect((host, port))
            s.close()
            return "connected"
        except Exception as e:  # noqa: BLE001 - any failure is the answer
            raise Err(f"{type(e).__name__}: {e}")

    def spin(self) -> None:
        n = 0
        while True:
            n += 1

    def bomb(self) -> int:
        hoard = []
        while True:
            hoard.append(bytearray(16 << 20))

    def fail(self, message: str) -> None:
        raise RuntimeError(message)

    def add(self, a: int, b: int) -> int:
        return a + b
