"""EdgeFleet control plane: FastAPI + SQLModel + an MQTT publisher/ingester.

Public surface:
    create_app(settings) -> FastAPI        controlplane.app
    ControlPlaneSettings                   controlplane.settings
    EmbeddedBroker                         controlplane.broker
    MqttBridge, MemoryPublisher,
    DesiredStatePublisher, SignedCommand   controlplane.mqtt_bridge / controlplane.publisher
    TrustStore                             controlplane.trust (the verified trust chain)
    CommandSigner, publish_commands        controlplane.commands (signed deployment commands)
    ControlPlaneError and subclasses       controlplane.errors
    main()                                 controlplane.cli (console script edgefleet-controlplane)

May import ``protocol`` and ``model_store`` only; never ``agent``, ``edgectl``, ``hw_profiles``.
Submodules are imported lazily by their users so that ``import controlplane`` stays cheap.
"""
