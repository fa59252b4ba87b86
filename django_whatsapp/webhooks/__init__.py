"""The two endpoints the gateway calls: status callbacks (:mod:`.callback`) and inbound messages
(:mod:`.inbound`), side by side with the parsing they share (:mod:`.parsing`). Each is thin:
verify, parse, hand to the services, answer."""
