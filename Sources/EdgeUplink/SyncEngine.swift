public enum EdgeUplinkPlaceholder {}
