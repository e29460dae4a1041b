public enum EdgeTransportPlaceholder {}
