"""The simulated device's MANSCDP side: answering the platform's MESSAGEs.

- answer Catalog (paged), DeviceInfo, DeviceStatus, RecordInfo (synthetic, paged) queries and
  DeviceControl (PTZCmd decoded and kept; the others kept and answered ``control_result``);
- keep a preset table per channel from the PTZCmds (set adds, delete removes) and answer
  PresetQuery from it (a PresetList; ``<Result>ERROR</Result>`` for an ID it does not have);
- answer DeviceConfig (2022): the modelled blocks and the standard's other configuration types
  are kept and answered OK (``config_result`` overrides), anything else ERROR; ConfigDownload
  answers what was set (BasicParam from the device's own settings otherwise); a SnapShotConfig
  also asks the runner to :class:`UploadSnapshots`, after which the device sends
  UploadSnapShotFinished.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from xueliang.gb28181 import manscdp
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.manscdp.configs import STANDARD_TYPES
from xueliang.gb28181.manscdp.document import Element, serialise
from xueliang.gb28181.ptz import Preset as PtzPreset
from xueliang.gb28181.ptz import PresetOp, PtzCommand
from xueliang.gb28181.ptz import decode as decode_ptz
from xueliang.gb28181.simulator.catalog import catalog_items, record_items
from xueliang.gb28181.simulator.core import DeviceCore
from xueliang.gb28181.simulator.model import MAX_PTZ_KEPT, Output, UploadSnapshots
from xueliang.gb28181.sip import SipRequest, make_response
from xueliang.gb28181.sip.transaction import ServerTransaction


class QueriesMixin(DeviceCore):
    """Queries, controls and configuration carried in MESSAGE bodies."""

    def _on_message(
        self, request: SipRequest, transaction: ServerTransaction | None, now: float
    ) -> list[Output]:
        self.counters.messages_in += 1
        try:
            parsed = manscdp.parse(request.body)
        except ParseError:
            return self._respond(transaction, make_response(request, 400), now)
        outputs = self._respond(transaction, make_response(request, 200), now)
        message = parsed.message
        encoding = parsed.encoding if parsed.encoding.upper() in ("GB2312", "UTF-8") else "GB2312"
        for body in self._answers(message, now):
            data = (
                serialise(body, encoding)
                if isinstance(body, Element)
                else manscdp.to_xml(body, encoding)
            )
            outputs += self._send_message(now, data, "message")
        outputs += self._deferred
        self._deferred = []
        return outputs

    def snapshots_uploaded(
        self, channel_id: str, session_id: str, file_ids: list[str], now: float
    ) -> list[Output]:
        """The pictures of a SnapShotConfig are uploaded: UploadSnapShotFinished."""
        self.snapshot_reports.append((session_id, tuple(file_ids)))
        note = manscdp.UploadSnapShotFinished(
            device_id=channel_id,
            sn=self._next_sn(),
            session_id=session_id,
            file_ids=tuple(file_ids),
        )
        return self._send_message(now, manscdp.to_xml(note), "message")

    def _config_known(self, target: str, block: manscdp.ConfigBlock) -> bool:
        if target != self.config.device_id and target not in self._channels:
            return False
        if isinstance(block, manscdp.RawConfig):
            return block.tag in STANDARD_TYPES
        return True

    def _device_config(self, message: manscdp.DeviceConfig, sn: int) -> manscdp.Result:
        self.device_configs.append(message)
        target = message.device_id
        known = bool(message.configs) and all(
            self._config_known(target, block) for block in message.configs
        )
        result = self.config_result or ("OK" if known else "ERROR")
        if result == "OK":
            for block in message.configs:
                self.stored_configs[(target, manscdp.block_tag(block))] = block
                if isinstance(block, manscdp.SnapShotConfig) and self.take_snapshots:
                    self._deferred.append(
                        UploadSnapshots(
                            channel_id=target,
                            session_id=block.session_id,
                            url=block.upload_url,
                            count=max(1, min(10, block.snap_num)),
                            interval=float(max(0, block.interval)),
                        )
                    )
        return manscdp.Result(cmd_type="DeviceConfig", device_id=target, sn=sn, result=result)

    def _config_download(self, message: manscdp.ConfigDownloadQuery, sn: int) -> manscdp.Message:
        cfg = self.config
        target = message.device_id or cfg.device_id
        blocks: list[manscdp.ConfigBlock] = []
        for tag in message.config_types:
            block = self.stored_configs.get((target, tag))
            if block is None and tag == "BasicParam":
                block = manscdp.BasicParam(
                    name=f"{'NVR' if cfg.is_nvr else 'IPC'}-{target[-4:]}",
                    expiration=cfg.expires,
                    heartbeat_interval=max(1, round(cfg.keepalive_interval)),
                    heartbeat_count=cfg.keepalive_max_failures,
                )
            if block is not None:
                blocks.append(block)
        return manscdp.ConfigDownload(device_id=target, sn=sn, configs=tuple(blocks))

    def _keep_preset(self, channel_id: str, command: PtzCommand) -> None:
        if not isinstance(command, PtzPreset):
            return
        if command.op is PresetOp.SET:
            table = self.presets.setdefault(channel_id, {})
            table.setdefault(command.number, f"预置点{command.number}")
        elif command.op is PresetOp.DELETE:
            self.presets.get(channel_id, {}).pop(command.number, None)

    def _preset_list(self, message: manscdp.Unknown, sn: int) -> Element:
        """The PresetQuery answer: the channel's presets by number (a PresetList)."""
        target = message.device_id or self.config.device_id
        root = Element("Response")
        root.add("CmdType", "PresetQuery")
        root.add("SN", sn)
        root.add("DeviceID", target)
        if target != self.config.device_id and target not in self._channels:
            root.add("Result", "ERROR")
            return root
        presets = sorted(self.presets.get(target, {}).items())
        root.add("SumNum", len(presets))
        listed = root.append(Element("PresetList", attributes={"Num": str(len(presets))}))
        for number, name in presets:
            item = listed.append(Element("Item"))
            item.add("PresetID", number)
            item.add("PresetName", name)
        return root

    def _answers(self, message: manscdp.Message, now: float) -> list[manscdp.Message | Element]:
        cfg = self.config
        sn = message.sn if message.sn is not None else 0
        if isinstance(message, manscdp.CatalogQuery):
            channels = tuple(self._channels.values())
            catalog = catalog_items(cfg.device_id, cfg.civil_code or cfg.domain[:6], channels)
            return list(manscdp.catalog_pages(cfg.device_id, sn, catalog, cfg.catalog_page_size))
        if isinstance(message, manscdp.DeviceInfoQuery):
            return [
                manscdp.DeviceInfo(
                    device_id=message.device_id or cfg.device_id,
                    sn=sn,
                    device_name=f"{'NVR' if cfg.is_nvr else 'IPC'}-{cfg.device_id[-4:]}",
                    manufacturer=cfg.manufacturer,
                    model=cfg.model,
                    firmware=cfg.firmware,
                    channel=len(cfg.channels),
                )
            ]
        if isinstance(message, manscdp.DeviceStatusQuery):
            return [
                manscdp.DeviceStatus(
                    device_id=message.device_id or cfg.device_id,
                    sn=sn,
                    online="ON",
                    status="OK",
                    encode="ON",
                    record="OFF",
                    device_time=(
                        datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
                        + timedelta(hours=cfg.utc_offset_hours)
                    ),
                )
            ]
        if isinstance(message, manscdp.DeviceConfig):
            return [self._device_config(message, sn)]
        if isinstance(message, manscdp.ConfigDownloadQuery):
            return [self._config_download(message, sn)]
        if (
            isinstance(message, manscdp.Unknown)
            and message.kind is manscdp.Kind.QUERY
            and message.cmd_type == "PresetQuery"
        ):
            return [self._preset_list(message, sn)]
        if isinstance(message, manscdp.Unknown) and message.kind is manscdp.Kind.QUERY:
            # The 2022 queries (SD card, PTZ position, home position, presets, …): a plain
            # answer, as a device with nothing to report gives.
            return [
                manscdp.Unknown(
                    kind=manscdp.Kind.RESPONSE,
                    cmd_type=message.cmd_type,
                    device_id=message.device_id or cfg.device_id,
                    sn=sn,
                    fields={"Result": "OK", "SumNum": "0"},
                )
            ]
        if isinstance(message, manscdp.RecordInfoQuery):
            channel = self._channels.get(message.device_id)
            items = (
                record_items(channel, message.start_time, message.end_time)
                if channel is not None
                and message.end_time - message.start_time < timedelta(days=32)
                else []
            )
            name = channel.name if channel is not None else None
            return list(
                manscdp.record_pages(message.device_id, sn, items, cfg.record_page_size, name=name)
            )
        if isinstance(message, manscdp.Result) and message.cmd_type == "Alarm":
            self.alarm_answers.append(message)
            del self.alarm_answers[:-MAX_PTZ_KEPT]
            return []
        if isinstance(message, manscdp.DeviceControl):
            if message.ptz_cmd is not None:
                # A bad PTZCmd is acknowledged and ignored, as cameras do.
                with contextlib.suppress(ParseError):
                    decoded = decode_ptz(message.ptz_cmd)
                    self.ptz_commands.append((message.device_id, decoded))
                    self._keep_preset(message.device_id, decoded.command)
                return []  # PTZ has no Result answer
            self.controls.append(message)
            return [
                manscdp.Result(
                    cmd_type="DeviceControl",
                    device_id=message.device_id,
                    sn=sn,
                    result=self.control_result,
                )
            ]
        return []
