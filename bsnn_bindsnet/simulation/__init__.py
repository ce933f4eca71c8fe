"""Running a converted network: minibatch simulation on BindsNET's ``Network.run``
(:mod:`.simulate`), live early exit (:mod:`.early_exit`), ``torchrun`` sharding
(:mod:`.distributed`) and the saved report (:mod:`.report`).
"""
