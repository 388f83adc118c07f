"""A Python grpc.aio client, written the way users of the system this
operator replaces write theirs, against a real `crypto-operator serve`:
free-form client types, a half-closed stream, a malformed record that
costs a dropped message and not the session, operator pings answered, and
a newer session superseding an older one."""

from __future__ import annotations

import asyncio

import grpc
import pytest

WAIT = 10.0


class Client:
    """One ConnectClient stream: a queue feeds the request iterator; commands
    are read in a background task that acks pings (and everything else)."""

    def __init__(self, pb, channel, client_id: str, client_type: str = "wallet-sync"):
        self.pb = pb
        self.client_id = client_id
        self.client_type = client_type
        self.stub = pb.grpc.CryptoStreamingServiceStub(channel)
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.call = None
        self.registered = None
        self.acked = 0
        self.reader = None

    def message(self, **payload):
        return self.pb.common.ClientMessage(client_id=self.client_id, **payload)

    async def _requests(self):
        yield self.message(
            register=self.pb.common.ClientRegistration(
                client_name="test-client", client_type=self.client_type, version="1.0.0"
            )
        )
        while True:
            msg = await self.outbox.get()
            if msg is None:
                return
            yield msg

    async def connect(self):
        self.call = self.stub.ConnectClient(self._requests())
        first = await asyncio.wait_for(self.call.read(), WAIT)
        assert first.WhichOneof("command") == "registered", first
        self.registered = first.registered
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self):
        while True:
            try:
                cmd = await self.call.read()
            except grpc.aio.AioRpcError:
                return  # the status is read with call.code()
            if cmd is grpc.aio.EOF:
                return
            kind = cmd.WhichOneof("command")
            if kind in ("registered", "disconnect"):
                continue
            self.acked += 1
            await self.outbox.put(
                self.message(command_ack=self.pb.common.CommandAck(command_id=cmd.command_id, success=True))
            )

    async def send(self, **payload):
        await self.outbox.put(self.message(**payload))

    async def end_code(self):
        """Waits for the stream to end; returns its status code."""
        await asyncio.wait_for(asyncio.shield(self.reader), WAIT)
        return await self.call.code()

    async def close(self):
        await self.outbox.put(None)
        if self.reader:
            self.reader.cancel()
        self.call.cancel()


def operator(pb, channel):
    return pb.grpc.CryptoStreamingServiceStub(channel)


async def ping(pb, op, client_id: str):
    return await op.ExecuteCommandSync(
        pb.streaming.ExecuteCommandRequest(
            client_id=client_id, command=pb.common.ServerCommand(ping=pb.common.Ping()), timeout_ms=5000
        ),
        timeout=WAIT,
    )


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_registers_with_a_free_form_client_type(pb, server):
    async def main():
        async with grpc.aio.insecure_channel(server.grpc) as ch:
            c = await Client(pb, ch, "py-wallet-1", "wallet-sync").connect()
            custom = await Client(pb, ch, "py-custom-1", "Arbitrage.Bot_2").connect()
            assert c.registered.session_id
            assert c.registered.heartbeat_interval.seconds > 0
            op = operator(pb, ch)
            info = await op.GetClient(pb.streaming.GetClientRequest(client_id="py-wallet-1"), timeout=WAIT)
            assert info.registration.client_type == "wallet-sync"
            assert info.registration.client_name == "test-client"
            info = await op.GetClient(pb.streaming.GetClientRequest(client_id="py-custom-1"), timeout=WAIT)
            assert info.registration.client_type == "arbitrage.bot_2", "stored lower-case"
            await c.close()
            await custom.close()

    run(main())


def test_an_unusable_client_type_is_refused_naming_the_field(pb, server):
    async def main():
        async with grpc.aio.insecure_channel(server.grpc) as ch:
            stub = pb.grpc.CryptoStreamingServiceStub(ch)
            call = stub.ConnectClient()
            await call.write(
                pb.common.ClientMessage(
                    client_id="py-bad-type",
                    register=pb.common.ClientRegistration(client_name="x", client_type="wallet sync"),
                )
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(call.read(), WAIT)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "client_type" in err.value.details()

    run(main())


def test_registers_then_half_closes_and_still_reads_registered(pb, server):
    async def main():
        async with grpc.aio.insecure_channel(server.grpc) as ch:
            stub = pb.grpc.CryptoStreamingServiceStub(ch)
            call = stub.ConnectClient()
            await call.write(
                pb.common.ClientMessage(
                    client_id="py-half-closed",
                    register=pb.common.ClientRegistration(client_name="test-client", client_type="wallet-sync"),
                )
            )
            await call.done_writing()
            first = await asyncio.wait_for(call.read(), WAIT)
            assert first.WhichOneof("command") == "registered", first
            assert first.registered.session_id
            # The client closed its side: the session ends cleanly.
            rest = await asyncio.wait_for(call.read(), WAIT)
            assert rest is grpc.aio.EOF
            assert await call.code() == grpc.StatusCode.OK

    run(main())


def test_a_wallet_update_with_no_fields_costs_a_message_not_the_session(pb, server):
    async def main():
        async with grpc.aio.insecure_channel(server.grpc) as ch:
            c = await Client(pb, ch, "py-sloppy").connect()
            await c.send(wallet_update=pb.common.WalletUpdate())
            await c.send(wallet_update=pb.common.WalletUpdate(wallet_id="0xabc", asset="ETH", balance="1.5"))
            op = operator(pb, ch)
            ack = await ping(pb, op, "py-sloppy")
            assert ack.success, "the session is still there"
            info = await op.GetClient(pb.streaming.GetClientRequest(client_id="py-sloppy"), timeout=WAIT)
            assert info.session_id == c.registered.session_id, "the same session"
            assert info.counters.messages_rejected == 1
            assert info.counters.wallet_updates == 1
            assert [w.wallet_id for w in info.wallets] == ["0xabc"]
            await c.close()

    run(main())


def test_answers_two_hundred_execute_command_sync_pings(pb, server):
    async def main():
        async with grpc.aio.insecure_channel(server.grpc) as ch:
            c = await Client(pb, ch, "py-pinged").connect()
            op = operator(pb, ch)
            # Sixteen in flight at a time, well inside the server's queue
            # (64 commands per client).
            gate = asyncio.Semaphore(16)

            async def one():
                async with gate:
                    return await ping(pb, op, "py-pinged")

            acks = await asyncio.gather(*(one() for _ in range(200)))
            assert all(a.success for a in acks)
            assert len({a.command_id for a in acks}) == 200
            assert c.acked == 200
            await c.close()

    run(main())


def test_a_second_session_with_the_same_id_supersedes_the_first(pb, server):
    async def main():
        async with grpc.aio.insecure_channel(server.grpc) as ch:
            old = await Client(pb, ch, "py-twice").connect()
            new = await Client(pb, ch, "py-twice").connect()
            assert await old.end_code() == grpc.StatusCode.ABORTED
            assert "superseded" in await old.call.details()
            ack = await ping(pb, operator(pb, ch), "py-twice")
            assert ack.success, "the new session answers"
            await new.close()

    run(main())
