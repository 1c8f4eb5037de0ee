"""BioLogic potentiostats of the VMP-300 family (VSP-300, SP-300, ...) through easy-biologic.

:class:`VSP300` is the driver; :func:`plan` the mapping from our techniques to EC-Lab's ``*4.ecc``
techniques and their parameters; :func:`decode` reads what ``get_data`` returns. easy-biologic
runs only on Windows with BioLogic's DLL and is imported in ``VSP300.open()``, never here. The
tests run the driver through easy-biologic's own code over a fake of the DLL
(:mod:`simulators.instruments.eclib_fake`); a served stand-in reaches
:class:`simulators.instruments.biologic_device.SimBiologicInstrument` through a proxy.
"""

from drivers.biologic.data import Block, decode
from drivers.biologic.techniques import EccLoad, limit_test, plan
from drivers.biologic.vsp300 import VSP300, VSP300Channel, channel_capabilities

__all__ = ["VSP300", "Block", "EccLoad", "VSP300Channel", "channel_capabilities", "decode",
           "limit_test", "plan"]
