"""Helpers shared by the ROS 2 node adapters (the only library part that imports rclpy)."""
